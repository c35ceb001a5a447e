import { lstat, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/* Small questions about the tree, asked in several places. */

export const exists = (p: string): Promise<boolean> =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Every non-directory under `root`, relative, sorted; none when `root` is absent. */
export async function filesUnder(root: string, rel = ''): Promise<string[]> {
  const names = (await readdir(path.join(root, rel)).catch(() => [] as string[])).sort();
  // Siblings looked at together (a release has thousands of entries), listed in name order all the same.
  const below = await Promise.all(
    names.map(async (e) => {
      const r = path.join(rel, e);
      return (await lstat(path.join(root, r))).isDirectory() ? filesUnder(root, r) : [r];
    }),
  );
  return below.flat();
}
