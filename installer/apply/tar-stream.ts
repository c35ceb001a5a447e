import { createReadStream } from 'node:fs';
import * as tar from 'tar';

/*
 * Reading archives that come from elsewhere (bundles, backups): the file is
 * streamed into node-tar, and every entry is judged by a rule of the
 * caller's before anything of it is written. The first refusal stops the
 * stream and is what the caller gets back.
 */

/** Streams the archive into a tar parser or unpacker; settles when it is done or has failed. */
export function feed(file: string, sink: tar.Parser | tar.Unpack, done: 'end' | 'close'): Promise<void> {
  return new Promise((resolve, reject) => {
    const input = createReadStream(file);
    const fail = (e: unknown) => {
      input.destroy();
      reject(e);
    };
    input.on('error', fail);
    sink.on('error', fail);
    sink.on(done, () => resolve());
    input.pipe(sink as unknown as NodeJS.WritableStream);
  });
}

/**
 * Extracts `file` into `into`, each entry admitted by `admit` first (it
 * throws to refuse), owners never taken from the archive. A refusal is
 * rethrown as is; any other failure goes through `failed`.
 */
export async function extractAdmitted(
  file: string,
  into: string,
  admit: (path: string, entry: tar.ReadEntry) => void,
  failed: (e: unknown) => Error,
  modes: { dmode?: number; fmode?: number } = {},
): Promise<void> {
  let refusal: unknown;
  const unpack: tar.Unpack = tar.x({
    cwd: into,
    strict: true,
    preservePaths: false,
    // node-tar keeps the archive's uid/gid by default when run as root.
    preserveOwner: false,
    ...modes,
    filter: (p, e) => {
      if (refusal) return false;
      try {
        admit(p, e as tar.ReadEntry);
        return true;
      } catch (err) {
        refusal = err;
        unpack.abort(err as Error);
        return false;
      }
    },
  }) as tar.Unpack;
  try {
    await feed(file, unpack, 'close');
  } catch (e) {
    throw refusal ?? failed(e);
  }
  if (refusal) throw refusal;
}
