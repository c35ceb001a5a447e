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
  const out: string[] = [];
  for (const e of (await readdir(path.join(root, rel)).catch(() => [] as string[])).sort()) {
    const r = path.join(rel, e);
    if ((await lstat(path.join(root, r))).isDirectory()) out.push(...(await filesUnder(root, r)));
    else out.push(r);
  }
  return out;
}
