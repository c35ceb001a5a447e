#!/usr/bin/env node
/*
 * Entry point of PREFIX/bin/webserver. The REST API comes with the store/API
 * issue; until then it says so and exits non-zero.
 */
if (process.argv.includes('--help')) {
  process.stdout.write('Usage: webserver\n\nServes the Canopsis REST API on [server] bind:port of etc/webserver.conf.\n');
} else {
  process.stderr.write('webserver: the REST API is not part of this release yet\n');
  process.exitCode = 3;
}
