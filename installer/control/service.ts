#!/usr/bin/env node
import { Argument, Command } from 'commander';
import { parseOrExit } from '../../runtime/cli/args.js';
import { prefixFrom } from '../../runtime/config/files.js';
import { EXIT } from '../../runtime/contract/exit-codes.js';
import { serviceState, startService, stopService } from './services.js';
import { Supervisor } from './supervisor.js';

/*
 * PREFIX/bin/service NAME start|stop|restart|status (seed 004): NAME is
 * mongodb, rabbitmq-server, collectd, amqp2engines, webserver or one engine
 * (engine-che). supervisord is started first when it is not running. Exit
 * codes after LSB: status 0 running, 3 stopped, 1 dead or not ready;
 * start/stop 0 on success, 1 otherwise; 2 for usage.
 */

const ACTIONS = ['start', 'stop', 'restart', 'status'] as const;
type Action = (typeof ACTIONS)[number];

const cmd = new Command('service')
  .description('Start, stop, restart or show one service of the appliance.')
  .argument('<name>', 'mongodb, rabbitmq-server, collectd, amqp2engines, webserver or engine-<name>')
  .addArgument(new Argument('<action>').choices(ACTIONS))
  .addHelpText('after', '\nExit codes (LSB): status 0 running, 3 stopped, 1 dead or not ready; start/stop/restart 0 or 1; 2 usage.')
  .exitOverride();

parseOrExit(cmd);

const [service, action] = cmd.processedArgs as [string, Action];
const timeoutMs = Number(process.env.CPS_SERVICE_TIMEOUT ?? 120) * 1000;
const sup = new Supervisor(prefixFrom());
const out = (s: string) => process.stdout.write(`${s}\n`);

async function act(): Promise<number> {
  switch (action) {
    case 'start': {
      const s = await startService(sup, sup.prefix, service, timeoutMs);
      out(`${service}: ${s.ready ? 'started' : 'FAILED'} (${s.detail})`);
      return s.ready ? EXIT.ok : EXIT.failed;
    }
    case 'stop': {
      const s = await stopService(sup, service);
      out(`${service}: ${s.running ? 'FAILED to stop' : 'stopped'} (${s.detail})`);
      return s.running ? EXIT.failed : EXIT.ok;
    }
    case 'restart': {
      await stopService(sup, service);
      const s = await startService(sup, sup.prefix, service, timeoutMs);
      out(`${service}: ${s.ready ? 'restarted' : 'FAILED'} (${s.detail})`);
      return s.ready ? EXIT.ok : EXIT.failed;
    }
    case 'status': {
      if (!(await sup.running())) {
        out(`${service} is stopped (supervisord not running)`);
        return EXIT.notRunning;
      }
      const s = await serviceState(sup, sup.prefix, service);
      const stopped = !s.running && /STOPPED|EXITED/.test(s.detail) && !/FATAL|BACKOFF/.test(s.detail);
      out(`${service} is ${s.ready ? 'running' : stopped ? 'stopped' : 'not ready'} (${s.detail})`);
      return s.ready ? EXIT.ok : stopped ? EXIT.notRunning : EXIT.failed;
    }
  }
}

try {
  process.exit(await act());
} catch (e) {
  process.stderr.write(`service ${service} ${action}: ${(e as Error).message}\n`);
  process.exit(EXIT.failed);
}
