#!/usr/bin/env node
import { Command } from 'commander';

/*
 * The engine launcher's command line, as the rendered supervisord programs
 * and systemd units call it. The engine runtime itself comes with the runtime
 * issue; until then a launch says so and exits non-zero, so a supervisor
 * shows the engine as failed rather than running.
 */

export function launcherProgram(): Command {
  return new Command('engine-launcher')
    .description('Run one Canopsis engine process: consume Engine_<name>, run its tasks, publish to the next engines.')
    .requiredOption('-e, --engine-type <type>', 'engine type (dynamic: tasks from etc/amqp2engines.conf)')
    .requiredOption('-n, --name <name>', 'engine name, the [engine:<name>] section')
    .option('-w, --worker <n>', 'worker number of this process', '0')
    .option('-l, --log-level <level>', 'debug, info, warning, error or critical', 'info')
    .option('-publishQueue, --publish-queue <queue>', 'publish every output to this queue instead of the next engines')
    .option('-consumeQueue, --consume-queue <queue>', 'consume this queue instead of Engine_<name>')
    .exitOverride();
}

// Go-style single-dash long flags (-publishQueue) as seed 002 writes them.
export const normaliseArgs = (argv: string[]) => argv.map((a) => (a === '-publishQueue' ? '--publish-queue' : a === '-consumeQueue' ? '--consume-queue' : a));

try {
  const cmd = launcherProgram();
  cmd.parse(normaliseArgs(process.argv.slice(2)), { from: 'user' });
  process.stderr.write(`engine-launcher: engine ${cmd.opts().name}: the engine runtime is not part of this release yet\n`);
  process.exitCode = 3;
} catch (e) {
  const code = (e as { code?: string }).code;
  process.exitCode = code === 'commander.helpDisplayed' || code === 'commander.help' ? 0 : 2;
}
