import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type Options } from 'execa';

/** Repository root (dist/test/helpers -> three levels up). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CLI = path.join(ROOT, 'dist', 'installer', 'cli.js');

/** A temp dir the service user can enter (mkdtemp makes it 0700). */
export async function tempDir(tag: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `cps-${tag}-`));
  await chmod(dir, 0o755);
  return dir;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export interface RunResult {
  exitCode: number;
  /** The signal that ended it, if one did. */
  signal?: string;
  stdout: string;
  stderr: string;
  all: string;
}

/** Runs a command; never throws, the test asserts on the result. */
export async function run(file: string, args: string[], opts: Pick<Options, 'env' | 'cwd' | 'timeout'> = {}): Promise<RunResult> {
  const started = performance.now();
  const r = await execa(file, args, { reject: false, all: true, ...opts });
  // CPS_TEST_TRACE=1: what each command took, to see where a slow test spends its time.
  if (process.env.CPS_TEST_TRACE)
    process.stderr.write(
      `[trace] ${((performance.now() - started) / 1000).toFixed(1)} s  ${path.basename(file)} ${args.join(' ').slice(0, 160)}\n`,
    );
  return {
    exitCode: r.exitCode ?? -1,
    signal: r.signal ?? undefined,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    all: String(r.all ?? ''),
  };
}

/** Runs ./build-install's compiled CLI. */
export async function buildInstall(args: string[], opts: Pick<Options, 'env' | 'cwd' | 'timeout'> = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], opts);
}

/**
 * Settings that keep a test install clear of the services already on this
 * machine (RabbitMQ on 5672/25672, anything on 8082): ports from a base.
 */
export function isolatedPorts(base: number, node = `cpstest${base}@localhost`): string[] {
  return [
    `rabbitmq.port=${base}`,
    `rabbitmq.dist_port=${base + 1}`,
    `rabbitmq.management_port=${base + 2}`,
    `webserver.port=${base + 3}`,
    `store.mongodb_port=${base + 4}`,
    `rabbitmq.node_name=${node}`,
  ].flatMap((s) => ['--set', s]);
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Every regular file under a directory, relative, with its content: a snapshot to compare. */
export async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    let entries: string[];
    try {
      entries = await readdir(d);
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e);
      const st = await stat(p);
      if (st.isDirectory()) await walk(p);
      else out.set(path.relative(dir, p), `${st.mode}:${st.mtimeMs}:${(await readFile(p)).toString('base64')}`);
    }
  };
  await walk(dir);
  return out;
}
