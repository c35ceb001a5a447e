#!/usr/bin/env node
import { Command, Option } from 'commander';
import { InstallerError, UsageError } from './errors.js';
import { aptInstall } from './host/apt.js';
import { gatherFacts } from './host/facts.js';
import { installSteps, newState, type InstallOptions } from './install.js';
import { PACKAGES } from './preflight/binaries.js';
import { CHECK_NAMES, runChecks } from './preflight/checks.js';
import { describeRelease } from './apply/release.js';
import { prepare } from './prepare.js';
import { startStack } from './start.js';
import { planLines, summary, summaryLines } from './report.js';
import { runSteps, type Display } from './runner.js';
import { parseSetOption } from './settings/load.js';
import { PreflightError } from './errors.js';

/*
 * The command line: parses options, runs the steps, turns typed errors into
 * exit codes and one-line reasons. No install logic lives here.
 */

const DEFAULT_PREFIX = '/opt/canopsis';

interface CommonFlags {
  prefix: string;
  set: string[];
  json?: boolean;
  skipCheck: string[];
  installDeps: boolean;
  yes?: boolean;
}

const collect = (v: string, prev: string[]) => prev.concat(v);

function withCommon(cmd: Command): Command {
  return cmd
    .option('--prefix <dir>', 'installation prefix', DEFAULT_PREFIX)
    .option('--set <section.key=value>', 'change a setting in etc/canopsis.ini (repeatable)', collect, [])
    .option('--json', 'print one JSON object instead of text')
    .addOption(new Option('--skip-check <name>', `skip a preflight check, with a warning (repeatable): ${CHECK_NAMES.join(', ')}`).argParser(collect).default([]))
    .option('--no-install-deps', 'do not apt-get install missing Debian packages; fail preflight instead');
}

function options(flags: CommonFlags, dryRun: boolean): InstallOptions {
  for (const c of flags.skipCheck) {
    if (!(CHECK_NAMES as readonly string[]).includes(c)) throw new UsageError(`--skip-check ${c}: unknown check; known: ${CHECK_NAMES.join(', ')}`);
  }
  return {
    prefix: flags.prefix,
    sets: flags.set.map(parseSetOption),
    skipChecks: new Set(flags.skipCheck),
    installDeps: flags.installDeps,
    dryRun,
  };
}

// A terminal of unknown width (a pipe through script(1)) gets plain lines: listr2 would wrap every character.
const display = (flags: CommonFlags): Display => (flags.json ? 'silent' : process.stdout.isTTY && (process.stdout.columns ?? 0) >= 40 ? 'tty' : 'plain');
const out = (line: string) => process.stdout.write(`${line}\n`);

async function install(flags: CommonFlags & { start?: boolean; unitDir?: string }): Promise<void> {
  const state = newState(options(flags, false));
  await runSteps(installSteps(), state, display(flags), out);
  const started = flags.start ? await startStack(state.prepared!, { unitDir: flags.unitDir }) : undefined;
  if (flags.json) {
    out(JSON.stringify({ ...summary(state), ...(started ? { started } : {}) }));
    return;
  }
  summaryLines(state).forEach((l) => out(l));
  if (started) {
    const p = state.prepared!;
    started.notes.forEach((n) => out(`note: ${n}`));
    out(`Running (${started.init}):`);
    started.status.trim().split('\n').forEach((l) => out(`  ${l}`));
    out(`REST API: ${started.apiUrl} (header x-canopsis-authkey: [api] authkey of ${p.layout.secretsFile})`);
    out(`Logs: ${p.layout.log}/ (engines in ${p.layout.engineLog}/)`);
    out(`Proof: a probe event went through the pipeline and came back as alarm ${started.probeAlarm}.`);
    out(`Control: ${p.layout.bin}/hypcontrol start|stop|status, ${p.layout.bin}/service NAME start|stop|status`);
  }
}

async function planCommand(flags: CommonFlags & { diff: boolean }): Promise<void> {
  const state = newState(options(flags, true));
  await runSteps(installSteps(), state, flags.json ? 'silent' : 'plain', () => undefined);
  if (flags.json) {
    out(JSON.stringify({ ok: true, files: (state.planned ?? []).map((p) => ({ target: p.target, action: p.action, write: p.write })) }));
  } else {
    planLines(state, flags.diff).forEach((l) => out(l));
    state.warnings.forEach((w) => out(`warning: ${w}`));
  }
}

async function check(flags: CommonFlags): Promise<void> {
  const opts = options(flags, true);
  const facts = await gatherFacts();
  const p = await prepare(opts.prefix, facts, opts.sets);
  const release = await describeRelease();
  const failures = await runChecks({ prepared: p, treeBytes: release.bytes }, opts.skipChecks);
  if (failures.length) throw new PreflightError(failures);
  if (flags.json) out(JSON.stringify({ ok: true, skipped: [...opts.skipChecks] }));
  else out(`preflight passed for ${p.layout.prefix}${opts.skipChecks.size ? ` (skipped: ${[...opts.skipChecks].join(', ')})` : ''}`);
}

async function deps(flags: { forTests?: boolean; yes?: boolean }): Promise<void> {
  const facts = await gatherFacts();
  // Everything any configuration can use (tests exercise all of them).
  const packages = [...PACKAGES.rabbitmq, ...PACKAGES.supervisord, ...PACKAGES.collectd];
  if (!facts.root || !facts.debian) {
    out(`not root on Debian: make sure these are installed: ${packages.join(' ')}`);
    return;
  }
  const installed = await aptInstall(packages, (l) => out(l));
  out(installed.length ? `installed ${installed.join(' ')}` : `already installed: ${packages.join(' ')}`);
}

export function program(): Command {
  const cli = new Command('build-install')
    .description('Install, check and plan a Canopsis appliance under a prefix.')
    .showHelpAfterError()
    .exitOverride();
  withCommon(cli.command('install', { isDefault: true }).description('check the host, render every configuration and install the tree (the default)'))
    .option('-y, --yes', 'do not ask before installing Debian packages')
    .option('--start', 'start the stack afterwards and prove it with an event read back as an alarm')
    .option('--unit-dir <dir>', 'with init = systemd: install the units here instead of /etc/systemd/system (no daemon-reload)')
    .action(install);
  withCommon(cli.command('plan').description('show what install would change, with diffs of configuration files'))
    .option('--no-diff', 'list files only')
    .action(planCommand);
  withCommon(cli.command('check').description('run the preflight checks alone')).action(check);
  cli
    .command('deps')
    .description('install the Debian packages the appliance and its tests use')
    .option('--for-tests', 'install everything the test suite exercises')
    .option('-y, --yes', 'do not ask')
    .action(deps);
  return cli;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    const err = e as { code?: string; exitCode?: number };
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) return err.exitCode ?? 2;
    if (e instanceof InstallerError) {
      process.stderr.write(`build-install: ${e.message}\n`);
      for (const d of e.details()) process.stderr.write(`  ${d}\n`);
      return e.exitCode;
    }
    process.stderr.write(`build-install: unexpected error: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
