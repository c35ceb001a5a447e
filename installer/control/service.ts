#!/usr/bin/env node
import { prefixFrom } from '../../runtime/config/files.js';
import { serviceState, startService, stopService } from './services.js';
import { Supervisor } from './supervisor.js';

/*
 * PREFIX/bin/service NAME start|stop|restart|status (seed 004): NAME is
 * mongodb, rabbitmq-server, collectd, amqp2engines, webserver or one engine
 * (engine-che). supervisord is started first when it is not running. Exit
 * codes after LSB: status 0 running, 3 stopped, 1 dead or not ready;
 * start/stop 0 on success, 1 otherwise; 2 for usage.
 */

const USAGE = 'usage: service NAME start|stop|restart|status   (NAME: mongodb, rabbitmq-server, collectd, amqp2engines, webserver, engine-<name>)';
const [service, action] = process.argv.slice(2);
if (!service || service === '--help' || service === '-h') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(service ? 0 : 2);
}
const timeoutMs = Number(process.env.CPS_SERVICE_TIMEOUT ?? 120) * 1000;
const sup = new Supervisor(prefixFrom());
const out = (s: string) => process.stdout.write(`${s}\n`);

try {
  switch (action) {
    case 'start': {
      const s = await startService(sup, sup.prefix, service, timeoutMs);
      out(`${service}: ${s.ready ? 'started' : 'FAILED'} (${s.detail})`);
      process.exit(s.ready ? 0 : 1);
    }
    case 'stop': {
      const s = await stopService(sup, service);
      out(`${service}: ${s.running ? 'FAILED to stop' : 'stopped'} (${s.detail})`);
      process.exit(s.running ? 1 : 0);
    }
    case 'restart': {
      await stopService(sup, service);
      const s = await startService(sup, sup.prefix, service, timeoutMs);
      out(`${service}: ${s.ready ? 'restarted' : 'FAILED'} (${s.detail})`);
      process.exit(s.ready ? 0 : 1);
    }
    case 'status': {
      if (!(await sup.running())) {
        out(`${service} is stopped (supervisord not running)`);
        process.exit(3);
      }
      const s = await serviceState(sup, sup.prefix, service);
      const stopped = !s.running && /STOPPED|EXITED/.test(s.detail) && !/FATAL|BACKOFF/.test(s.detail);
      out(`${service} is ${s.ready ? 'running' : stopped ? 'stopped' : 'not ready'} (${s.detail})`);
      process.exit(s.ready ? 0 : stopped ? 3 : 1);
    }
    default:
      process.stderr.write(`${USAGE}\n`);
      process.exit(2);
  }
} catch (e) {
  process.stderr.write(`service ${service} ${action}: ${(e as Error).message}\n`);
  process.exit(1);
}
