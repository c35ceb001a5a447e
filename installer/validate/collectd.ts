import { execa } from '../host/exec.js';
import { perFile, type Validator } from './types.js';

/*
 * Debian's collectd 5.12 `-t` exits 0 whatever the config holds (collectd
 * issue #3216). `-T` parses the file, loads and configures every plugin and
 * runs one read cycle, exiting 1 on a syntax error; plugin option errors only
 * show in its output, so those lines count too. A write plugin failing to
 * reach a broker that is not running yet is not a config error.
 */
const REJECT = [
  /Invalid/i,
  /Ignoring unknown configuration option/i,
  /did not register for value/i,
  /failed to handle option/i,
  /Could not find plugin/i,
  /unknown (option|type)/i,
  /Parsing the config file failed/i,
  /syntax error/i,
  /configuration of .* failed/i,
];
const IGNORE = [/amqp plugin: /i];

export function collectdProblems(exitCode: number | undefined, output: string): string {
  const bad = output.split('\n').filter((l) => REJECT.some((r) => r.test(l)) && !IGNORE.some((r) => r.test(l) && !/option/i.test(l)));
  if (bad.length === 0 && exitCode !== 0) bad.push(output.trim().split('\n').slice(-3).join('\n') || `exit code ${exitCode}`);
  return bad.join('\n');
}

export async function checkCollectdConfig(collectd: string, file: string): Promise<string> {
  const r = await execa(collectd, ['-T', '-C', file], { reject: false, all: true, timeout: 60_000 });
  return collectdProblems(r.exitCode, r.all ?? '');
}

export function collectdValidator(collectd: string | undefined): Validator {
  return perFile(
    'collectd -T',
    /^etc\/collectd\.conf$/,
    (file) => checkCollectdConfig(collectd!, file),
    collectd ? undefined : 'collectd is not installed',
    // -T loads the plugins of the installed package: an upgrade replaces the binary too.
    { tools: collectd ? [collectd] : [] },
  );
}
