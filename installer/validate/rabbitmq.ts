import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from '../host/exec.js';
import { matching, perFile, type Validator } from './types.js';

/*
 * RabbitMQ reads rabbitmq.conf through cuttlefish with the schemas of its
 * plugins. This runs the same translation (schemas of every installed plugin,
 * conf file, generator) in a bare Erlang VM, without starting a node: unknown
 * keys, bad values and a load_definitions file that does not exist are
 * reported the way rabbitmq-server would report them at boot.
 */
const EVAL = `
[Conf, Dir] = init:get_plain_arguments(),
Schema = cuttlefish_schema:files(filelib:wildcard(Dir ++ "/*/priv/schema/*.schema")),
case cuttlefish_conf:files([Conf]) of
  {errorlist, E1} -> [io:format("~s~n", [cuttlefish_error:xlate(X)]) || X <- E1], halt(1);
  C -> case cuttlefish_generator:map(Schema, C) of
         {error, Phase, {errorlist, Es}} -> [io:format("~s: ~s~n", [Phase, cuttlefish_error:xlate(X)]) || X <- Es], halt(1);
         _ -> halt(0)
       end
end.`;

// Translations call into rabbit, rabbit_common, rabbitmq_prelaunch and plugin
// modules (log formatters, ...): every plugin's code must be loadable.
async function ebins(pluginsDir: string): Promise<string[]> {
  return (await readdir(pluginsDir)).sort().map((d) => path.join(pluginsDir, d, 'ebin'));
}

export async function checkRabbitmqConf(erl: string, rabbitmqHome: string, file: string): Promise<string> {
  const plugins = path.join(rabbitmqHome, 'plugins');
  const paths = await ebins(plugins);
  const r = await execa(erl, ['-noshell', ...paths.flatMap((p) => ['-pa', p]), '-eval', EVAL, '-extra', file, plugins], {
    reject: false,
    all: true,
    timeout: 60_000,
  });
  if (r.exitCode === 0) return '';
  return (
    (r.all ?? '')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('=ERROR REPORT') && !/Did you mean/.test(l))
      .join('\n') || `exit code ${r.exitCode}`
  );
}

export function rabbitmqValidator(erl: string | undefined, rabbitmqHome: string | undefined): Validator {
  return perFile(
    'RabbitMQ config check (cuttlefish)',
    /^etc\/rabbitmq\/rabbitmq\.conf$/,
    (file) => checkRabbitmqConf(erl!, rabbitmqHome!, file),
    erl && rabbitmqHome ? undefined : 'rabbitmq-server is not installed',
    {
      // load_definitions must name a file that exists.
      reads: matching(/^etc\/rabbitmq\/(rabbitmq\.conf|definitions\.json)$/),
      // The schemas come with the plugins of the installed RabbitMQ (its directory is named after its version).
      tools: erl && rabbitmqHome ? [erl, path.join(rabbitmqHome, 'plugins')] : [],
      context: rabbitmqHome ? [rabbitmqHome] : [],
    },
  );
}
