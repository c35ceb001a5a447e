import type { Options, Result } from 'execa';

/*
 * execa, loaded on its first call. Its 111 modules took a tenth of a
 * no-change install, which starts no program at all (every validator's
 * verdict unchanged, the release already live). This gives the result only,
 * not the subprocess: code that needs the child itself (its pid) imports
 * execa.
 */
// biome-ignore lint/complexity/noBannedTypes: execa's own default for its options
export async function execa<O extends Options = {}>(file: string, args: readonly string[] = [], options?: O): Promise<Result<O>> {
  const { execa: run } = await import('execa');
  return run(file, args, options as O) as unknown as Promise<Result<O>>;
}
