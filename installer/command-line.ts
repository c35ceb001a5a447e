import path from 'node:path';
import { Command, Option } from 'commander';
import { InstallerError, PreflightError, UsageError } from './errors.js';
import type { InstallOptions } from './install.js';
import { layoutOf } from './layout.js';
import { CHECK_NAMES } from './preflight/names.js';
import type { Display } from './runner.js';
import { SAFE_PATH } from './settings/fields.js';
import { timed, timingLines } from './timing.js';

/*
 * The command line: parses options, runs the steps, turns typed errors into
 * exit codes and one-line reasons. No install logic lives here. Each command
 * loads the modules it uses when it runs: an install does not wait for the
 * backup, bundle and HTTP client code (a third of the installer's start).
 */

const DEFAULT_PREFIX = '/opt/canopsis';

interface CommonFlags {
  conffilePolicy: 'keep' | 'replace' | 'ask';
  prefix: string;
  set: string[];
  json?: boolean;
  skipCheck: string[];
  installDeps: boolean;
  yes?: boolean;
  timings?: boolean;
}

const collect = (v: string, prev: string[]) => prev.concat(v);

const trustedKeyOption = () =>
  new Option(
    '--trusted-key <file>',
    'also trust bundles signed by this Ed25519 public key (PEM; repeatable), beside PREFIX/etc/trusted-keys/',
  )
    .argParser(collect)
    .default([]);
const UNSIGNED_HELP =
  'accept a bundle that is unsigned or signed by a key not trusted here: its origin is then not checked (its checksums still are)';

/**
 * --prefix: every rendered file names paths under it (supervisord, systemd,
 * shell, YAML, ini), so it may only hold characters all of them carry as is.
 */
const prefixOption = () =>
  new Option('--prefix <dir>', 'installation prefix').default(DEFAULT_PREFIX).argParser((v: string) => {
    if (!SAFE_PATH.test(v))
      throw new UsageError(
        `--prefix ${JSON.stringify(v)}: only letters, digits and _ . / + @ : - are allowed (the path is written into supervisord, systemd and shell files)`,
      );
    return v;
  });

function withCommon(cmd: Command): Command {
  return cmd
    .addOption(prefixOption())
    .option('--set <section.key=value>', 'change a setting in etc/canopsis.ini (repeatable)', collect, [])
    .option('--json', 'print one JSON object instead of text')
    .addOption(
      new Option('--skip-check <name>', `skip a preflight check, with a warning (repeatable): ${CHECK_NAMES.join(', ')}`)
        .argParser(collect)
        .default([]),
    )
    .option('--no-install-deps', 'do not apt-get install missing Debian packages; fail preflight instead')
    .addOption(
      new Option(
        '--conffile-policy <policy>',
        'conffiles you edited that we changed too: keep yours (ours as .dist), replace (yours as .operator), ask',
      )
        .choices(['keep', 'replace', 'ask'])
        .default('keep'),
    )
    .option('--timings', 'print how long each step took (the --json answer always has them, as timings)');
}

async function options(flags: CommonFlags, dryRun: boolean): Promise<InstallOptions> {
  const [{ parseSetOption }, { secretSetsFromEnv }] = await Promise.all([
    import('./settings/load.js'),
    import('./settings/secret-sets.js'),
  ]);
  for (const c of flags.skipCheck) {
    if (!(CHECK_NAMES as readonly string[]).includes(c))
      throw new UsageError(`--skip-check ${c}: unknown check; known: ${CHECK_NAMES.join(', ')}`);
  }
  return {
    prefix: flags.prefix,
    sets: [...flags.set, ...secretSetsFromEnv()].map(parseSetOption),
    skipChecks: new Set(flags.skipCheck),
    installDeps: flags.installDeps,
    dryRun,
    conffilePolicy: flags.conffilePolicy,
    ask: flags.conffilePolicy === 'ask' ? askOnTerminal : undefined,
  };
}

async function askOnTerminal(target: string): Promise<'keep' | 'replace'> {
  if (!process.stdin.isTTY)
    throw new UsageError(`--conffile-policy ask needs a terminal (${target} was edited and changed by us); use keep or replace`);
  const rl = (await import('node:readline/promises')).createInterface({ input: process.stdin, output: process.stderr });
  try {
    for (;;) {
      const a = (await rl.question(`${target}: you edited it and the new version changes it too. Keep yours [k] or take ours [r]? `))
        .trim()
        .toLowerCase();
      if (a === 'k' || a === '') return 'keep';
      if (a === 'r') return 'replace';
    }
  } finally {
    rl.close();
  }
}

// A terminal of unknown width (a pipe through script(1)) gets plain lines: listr2 would wrap every character.
const display = (flags: CommonFlags): Display =>
  flags.json ? 'silent' : process.stdout.isTTY && (process.stdout.columns ?? 0) >= 40 && flags.conffilePolicy !== 'ask' ? 'tty' : 'plain';
const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function install(flags: CommonFlags & { start?: boolean; unitDir?: string }): Promise<void> {
  const [{ installSteps, newState }, { runSteps }, { repairPrefix }, { summary, summaryLines }] = await Promise.all([
    import('./install.js'),
    import('./runner.js'),
    import('./bundle/transaction.js'),
    import('./report.js'),
  ]);
  const state = newState(await options(flags, false));
  // Since the process started: Node itself and the installer's modules.
  state.timings.push({ step: 'Load the installer', ms: performance.now() });
  await timed(state.timings, 'Finish an interrupted update', () =>
    repairPrefix(layoutOf(flags.prefix), flags.json ? () => undefined : out),
  );
  await runSteps(installSteps(), state, display(flags), out);
  const started = flags.start
    ? await timed(state.timings, 'Start the stack and probe it', async () =>
        (await import('./start.js')).startStack(state.prepared!, { unitDir: flags.unitDir }),
      )
    : undefined;
  if (flags.json) {
    out(JSON.stringify({ ...summary(state), ...(started ? { started } : {}) }));
    return;
  }
  for (const l of summaryLines(state)) out(l);
  if (flags.timings) for (const l of timingLines(state.timings)) out(l);
  if (started) {
    const p = state.prepared!;
    for (const n of started.notes) out(`note: ${n}`);
    out(`Running (${started.init}):`);
    for (const l of started.status.trim().split('\n')) out(`  ${l}`);
    if (started.apiUrl) {
      out(`REST API: ${started.apiUrl} (header x-canopsis-authkey: [api] authkey of ${p.layout.secretsFile})`);
      out(
        `Console: ${started.apiUrl.replace(/\/api\/v4\/?$/, '/')} (user admin, password: [console] admin_password of ${p.layout.secretsFile})`,
      );
      if (p.settings.webserver.tls)
        out(
          `Certificate: ${p.ctx.webserver.certFile}${p.settings.webserver.tls_cert ? '' : ' (self-signed: give clients it to trust, e.g. curl --cacert, or replace it with yours via webserver.tls_cert/tls_key)'}`,
        );
      out(`Proof: a probe event went through the pipeline and came back as alarm ${started.probeAlarm}.`);
    }
    out(`Logs: ${p.layout.log}/ (engines in ${p.layout.engineLog}/)`);
    out(`Control: ${p.layout.bin}/hypcontrol start|stop|status, ${p.layout.bin}/service NAME start|stop|status`);
  }
}

async function planCommand(flags: CommonFlags & { diff: boolean }): Promise<void> {
  const [{ installSteps, newState }, { runSteps }, { planLines }] = await Promise.all([
    import('./install.js'),
    import('./runner.js'),
    import('./plan-lines.js'),
  ]);
  const state = newState(await options(flags, true));
  state.timings.push({ step: 'Load the installer', ms: performance.now() });
  await runSteps(installSteps(), state, flags.json ? 'silent' : 'plain', () => undefined);
  if (flags.json) {
    out(
      JSON.stringify({
        ok: true,
        files: (state.planned ?? []).map((p) => ({ target: p.target, action: p.action, write: p.write })),
        timings: state.timings,
      }),
    );
  } else {
    for (const l of planLines(state, flags.diff)) out(l);
    for (const w of state.warnings) out(`warning: ${w}`);
    if (flags.timings) for (const l of timingLines(state.timings)) out(l);
  }
}

async function check(flags: CommonFlags): Promise<void> {
  const opts = await options(flags, true);
  const [{ gatherFacts }, { prepare }, { describeRelease, releaseBytesNeeded }, { runChecks }] = await Promise.all([
    import('./host/facts.js'),
    import('./prepare.js'),
    import('./apply/release.js'),
    import('./preflight/checks.js'),
  ]);
  const facts = await gatherFacts();
  const p = await prepare(opts.prefix, facts, opts.sets);
  const treeBytes = await releaseBytesNeeded(await describeRelease(), p.layout.releases);
  const failures = await runChecks({ prepared: p, treeBytes }, opts.skipChecks);
  if (failures.length) throw new PreflightError(failures);
  if (flags.json) out(JSON.stringify({ ok: true, skipped: [...opts.skipChecks] }));
  else out(`preflight passed for ${p.layout.prefix}${opts.skipChecks.size ? ` (skipped: ${[...opts.skipChecks].join(', ')})` : ''}`);
}

/** What only the test suite uses: Debian's Chromium, which the console's browser tests drive (playwright-core). */
// iproute2: the multi-host test's network namespaces (ip netns).
const TEST_ONLY_PACKAGES = ['chromium', 'iproute2'];

async function deps(flags: { forTests?: boolean; yes?: boolean }): Promise<void> {
  const [{ gatherFacts }, { allPackages }, { aptInstall }] = await Promise.all([
    import('./host/facts.js'),
    import('./preflight/binaries.js'),
    import('./host/apt.js'),
  ]);
  const facts = await gatherFacts();
  // Everything any configuration can use (tests exercise all of them).
  const packages = [...allPackages(), ...(flags.forTests ? TEST_ONLY_PACKAGES : [])];
  if (!facts.root || !facts.debian) {
    out(`not root on Debian: make sure these are installed: ${packages.join(' ')}`);
    return;
  }
  const installed = await aptInstall(packages, (l) => out(l));
  out(installed.length ? `installed ${installed.join(' ')}` : `already installed: ${packages.join(' ')}`);
}

async function fromBundle(
  flags: CommonFlags & {
    bundle: string;
    allowDowngrade?: boolean;
    allowIrreversible?: boolean;
    start?: boolean;
    trustedKey: string[];
    allowUnsigned?: boolean;
    skipBackup?: boolean;
  },
  update: boolean,
): Promise<void> {
  const passthrough = [
    ...flags.set.flatMap((x) => ['--set', x]),
    '--conffile-policy',
    flags.conffilePolicy === 'ask' ? 'keep' : flags.conffilePolicy,
    ...flags.skipCheck.flatMap((x) => ['--skip-check', x]),
    ...(flags.installDeps ? [] : ['--no-install-deps']),
    ...(flags.start ? ['--start'] : []),
  ];
  const { installFromBundle } = await import('./bundle/lifecycle.js');
  const r = await installFromBundle({
    prefix: flags.prefix,
    bundle: flags.bundle,
    allowDowngrade: !!flags.allowDowngrade,
    allowIrreversible: !!flags.allowIrreversible,
    passthrough,
    update,
    trustedKeys: flags.trustedKey,
    allowUnsigned: !!flags.allowUnsigned,
    skipBackup: !!flags.skipBackup,
    log: flags.json ? () => undefined : (l) => l.trim() && out(l.trimEnd()),
  });
  if (flags.json) out(JSON.stringify({ ok: true, ...r }));
  else
    out(
      r.from
        ? `updated ${flags.prefix} from ${r.from} to ${r.version} (${r.release})`
        : `installed ${r.version} (${r.release}) in ${flags.prefix} from ${flags.bundle}`,
    );
  if (!flags.json && flags.timings) for (const l of timingLines(r.timings)) out(l);
}

/** 95 -> "2 min", 7200 -> "2 h", in the largest unit that fits. */
function ago(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

export function program(): Command {
  const cli = new Command('build-install')
    .description('Install, check and plan a Canopsis appliance under a prefix.')
    .showHelpAfterError()
    .exitOverride();
  withCommon(
    cli
      .command('install', { isDefault: true })
      .description('check the host, render every configuration and install the tree (the default)'),
  )
    .option('-y, --yes', 'do not ask before installing Debian packages')
    .option('--start', 'start the stack afterwards and prove it with an event read back as an alarm')
    .option('--unit-dir <dir>', 'with init = systemd: install the units here instead of /etc/systemd/system (no daemon-reload)')
    .option('--bundle <file>', 'install from a bundle (./build-install bundle), no network needed')
    .option('--allow-downgrade', 'accept a bundle older than the installed version')
    .addOption(trustedKeyOption())
    .option('--allow-unsigned', UNSIGNED_HELP)
    .action((flags) => (flags.bundle ? fromBundle(flags, false) : install(flags)));
  withCommon(
    cli
      .command('update')
      .description('update an installed prefix from a bundle: health-checked, rolled back when the new version does not come up'),
  )
    .requiredOption('--bundle <file>', 'the bundle of the new version')
    .option('-y, --yes', 'do not ask before installing Debian packages')
    .option('--allow-downgrade', 'accept a bundle older than the installed version')
    .option('--allow-irreversible', 'accept store migrations a failed update cannot undo (back up the store first)')
    .option('--skip-backup', 'do not back up the store and etc/ before store migrations (the output says what was skipped)')
    .addOption(trustedKeyOption())
    .option('--allow-unsigned', UNSIGNED_HELP)
    .action((flags) => fromBundle(flags, true));
  cli
    .command('backup')
    .description(
      'an online copy of the store (the stack keeps running) and etc/ (secrets included) into one 0600 archive; keeps the last [backup] keep',
    )
    .addOption(prefixOption())
    .option('--out <dir>', "where to write it (default PREFIX/var/backups, root's, 0700)")
    .option('--json', 'print one JSON object')
    .action(async (o: { prefix: string; out?: string; json?: boolean }) => {
      const layout = layoutOf(o.prefix);
      const [{ withPrefixLock }, { createBackup, describeBackup }] = await Promise.all([
        import('./apply/lock.js'),
        import('./backup/backup.js'),
      ]);
      const r = await withPrefixLock(layout, () => createBackup(layout, { out: o.out, log: o.json ? () => undefined : out }));
      if (o.json) {
        const storeBytes = r.manifest.store.file ? (r.manifest.files[r.manifest.store.file]?.size ?? 0) : 0;
        out(
          JSON.stringify({
            ok: true,
            file: r.file,
            bytes: r.bytes,
            seconds: r.seconds,
            version: r.manifest.version,
            store: r.manifest.store,
            storeBytes,
            deleted: r.deleted,
          }),
        );
        return;
      }
      out(describeBackup(r));
      if (r.deleted.length)
        out(
          `removed ${r.deleted.length} older backup${r.deleted.length === 1 ? '' : 's'} ([backup] keep): ${r.deleted.map((f) => path.basename(f)).join(', ')}`,
        );
    });
  cli
    .command('restore')
    .description(
      'put a backup back: verified first; the store, etc/ and the migration record replaced, migrated to the installed version, started and probed',
    )
    .argument('<file>', 'a backup archive (./build-install backup)')
    .addOption(prefixOption())
    .option('-y, --yes', 'confirm: the store and etc/ of the prefix are replaced')
    .option('--json', 'print one JSON object')
    .action(async (file: string, o: { prefix: string; yes?: boolean; json?: boolean }) => {
      const { restoreBackup } = await import('./backup/restore.js');
      const r = await restoreBackup(o.prefix, {
        file,
        confirmed: !!o.yes,
        log: o.json ? () => undefined : (l) => l.trim() && out(l.trimEnd()),
      });
      if (o.json) out(JSON.stringify({ ok: true, ...r }));
      else
        out(
          `restored ${o.prefix} from the backup of ${r.backup.version} made ${r.backup.created}${r.migrated.length ? `, migrated to ${r.installed}` : ''}; running and probed`,
        );
    });
  cli
    .command('migrate-store')
    .description(
      'copy the whole store into the PostgreSQL of [store] postgresql_url (empty), check every count, then switch to it; stays on the old store otherwise',
    )
    .addOption(new Option('--to <backend>', 'the store to move to').choices(['postgresql']).makeOptionMandatory())
    .addOption(prefixOption())
    .option(
      '--set <section.key=value>',
      '[store] settings applied with the switch (store.postgresql_mode=local, store.postgresql_port=...) (repeatable)',
      collect,
      [],
    )
    .option('--json', 'print one JSON object')
    .action(async (o: { to: 'postgresql'; prefix: string; set: string[]; json?: boolean }) => {
      const { migrateStore } = await import('./migrate-store.js');
      const r = await migrateStore(o.prefix, {
        to: o.to,
        sets: o.set,
        log: o.json ? () => undefined : (l) => l.trim() && out(l.trimEnd()),
      });
      if (o.json) out(JSON.stringify({ ok: true, ...r }));
      else
        out(
          `${o.prefix} now keeps its store in PostgreSQL at ${r.target} (${r.collections.length} collections, ${r.collections.reduce((n, c) => n + c.source, 0)} documents copied from the ${r.from} store, which is left as it was)`,
        );
    });
  cli
    .command('bundle')
    .description(
      'write a self-contained versioned bundle (tar.gz): runtime, production dependencies, templates, installer, hooks, manifest',
    )
    .option('--out <dir>', 'where to write it', '.')
    .option('--sign-key <file>', 'sign it with this Ed25519 private key (./build-install keygen makes one)')
    .option('--json', 'print one JSON object')
    .action(async (o: { out: string; signKey?: string; json?: boolean }) => {
      const { createBundle } = await import('./bundle/create.js');
      const { file, manifest, fingerprint } = await createBundle(o.out, undefined, o.signKey ? { signKey: o.signKey } : {});
      if (o.json)
        out(
          JSON.stringify({
            ok: true,
            file,
            version: manifest.version,
            release: manifest.release,
            files: Object.keys(manifest.files).length,
            ...(fingerprint ? { fingerprint } : {}),
          }),
        );
      else
        out(
          `${file}: Canopsis ${manifest.version} (${manifest.release}), ${Object.keys(manifest.files).length} files, ${fingerprint ? `signed by ${fingerprint}` : 'unsigned (hosts will refuse it without --allow-unsigned)'}`,
        );
    });
  cli
    .command('keygen')
    .description(
      'make an Ed25519 key pair to sign bundles: the private key stays with you, the public one goes to PREFIX/etc/trusted-keys/ of each host',
    )
    .option('--out <dir>', 'where to write bundle-signing.key (0600) and bundle-signing.pub.pem', '.')
    .option('--json', 'print one JSON object')
    .action(async (o: { out: string; json?: boolean }) => {
      const k = await (await import('./bundle/signature.js')).generateSigningKey(o.out);
      if (o.json) out(JSON.stringify({ ok: true, ...k }));
      else
        out(
          `private key ${k.privateKey} (keep it secret), public key ${k.publicKey} (${k.fingerprint}): copy it into PREFIX/etc/trusted-keys/ on each host`,
        );
    });
  cli
    .command('status')
    .description('installed version, whether it runs, modified conffiles')
    .addOption(prefixOption())
    .option('--json', 'print one JSON object')
    .action(async (o: { prefix: string; json?: boolean }) => {
      const s = await (await import('./bundle/lifecycle.js')).status(o.prefix);
      if (o.json) {
        out(JSON.stringify(s));
        return;
      }
      if (!s.installed) {
        out(`${s.prefix}: not installed`);
        return;
      }
      out(`${s.prefix}: Canopsis ${s.version} (${s.release}), ${s.running ? 'running' : 'stopped'}`);
      out(s.pendingMigrations.length ? `pending migrations: ${s.pendingMigrations.join('; ')}` : 'pending migrations: none');
      out(s.modifiedConffiles.length ? `modified conffiles: ${s.modifiedConffiles.join(', ')}` : 'modified conffiles: none');
      if (s.pendingDist.length) out(`new versions waiting to be merged: ${s.pendingDist.join(', ')}`);
      const b = s.lastBackup;
      out(
        b
          ? `last backup: ${b.file} (Canopsis ${b.version}, ${ago(b.ageSeconds)} ago${b.present ? '' : ', the archive is no longer there'})`
          : 'last backup: none (./build-install backup)',
      );
      if (s.interrupted)
        out(
          `interrupted: the update from ${s.interrupted.from.version} to ${s.interrupted.to.version} begun ${s.interrupted.started} did not finish; the next install, update or remove rolls it back`,
        );
    });
  cli
    .command('recover')
    .description('roll back an update that did not finish (its run was killed); install, update and remove do it first anyway')
    .addOption(prefixOption())
    .action(async (o: { prefix: string }) => {
      const layout = layoutOf(o.prefix);
      const [{ withPrefixLock }, { recoverInterrupted }] = await Promise.all([
        import('./apply/lock.js'),
        import('./bundle/transaction.js'),
      ]);
      await withPrefixLock(layout, async () => {
        if (!(await recoverInterrupted(layout, out))) out(`nothing to recover in ${layout.prefix}: no update was interrupted`);
      });
    });
  cli
    .command('migrate')
    .description(
      "this release's migrations on a prefix: list the pending ones, or undo those newer than a version (update and downgrade run it)",
    )
    .addOption(prefixOption())
    .option('--down-to <version>', 'undo the migrations newer than this version')
    .option('--redo-after <version>', 'run again the store part of the migrations newer than this version (a failed downgrade)')
    .option('--json', 'print one JSON object')
    .action(async (o: { prefix: string; downTo?: string; redoAfter?: string; json?: boolean }) => {
      const layout = layoutOf(o.prefix);
      const [{ lockLent, withPrefixLock }, { migrateDownTo, pendingMigrations, redoStoreAfter }, { Supervisor }] = await Promise.all([
        import('./apply/lock.js'),
        import('./migrations/run.js'),
        import('./control/supervisor.js'),
      ]);
      if (o.downTo || o.redoAfter) {
        if (!(await lockLent(layout)) && (await new Supervisor(layout.prefix).running())) {
          throw new UsageError(`the stack of ${layout.prefix} runs: stop it (hypcontrol stop) before reshaping its data by hand`);
        }
        const ids = await withPrefixLock(layout, () => (o.downTo ? migrateDownTo(layout, o.downTo) : redoStoreAfter(layout, o.redoAfter!)));
        const key = o.downTo ? 'undone' : 'redone';
        out(o.json ? JSON.stringify({ [key]: ids }) : `${key}: ${ids.join(', ') || 'nothing'}`);
        return;
      }
      const list = await pendingMigrations(layout);
      if (o.json) out(JSON.stringify({ pending: list }));
      else for (const m of list) out(`${m.id}${m.reversible ? '' : ' (irreversible)'}: ${m.description}`);
    });
  cli
    .command('remove')
    .description('stop the services and remove the program files; etc/ and var/ (settings, data) stay')
    .addOption(prefixOption())
    .action(async (o: { prefix: string }) => {
      const removed = await (await import('./bundle/lifecycle.js')).remove(o.prefix, (l) => l.trim() && out(l.trimEnd()));
      out(`removed ${removed.join(', ')}; settings and data kept in ${o.prefix}/etc and ${o.prefix}/var`);
    });
  cli
    .command('purge')
    .description('remove everything under the prefix, settings and data included')
    .addOption(prefixOption())
    .option('-y, --yes', 'confirm')
    .action(async (o: { prefix: string; yes?: boolean }) => {
      await (await import('./bundle/lifecycle.js')).purge(o.prefix, !!o.yes, (l) => l.trim() && out(l.trimEnd()));
      out(`purged ${o.prefix}`);
    });
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
  // What root creates must be readable by the service user whatever root's shell umask (027 is common).
  process.umask(0o022);
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
