import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT } from '../test/helpers/index.js';

/*
 * docs/BENCHMARKS.md holds one section per benchmark, between markers, so
 * each benchmark rewrites its own figures and leaves the others.
 */
export async function writeSection(id: string, markdown: string): Promise<void> {
  const file = path.join(ROOT, 'docs', 'BENCHMARKS.md');
  const text = await readFile(file, 'utf8').catch(
    () => '# Benchmarks\n\nWritten by `npm run bench`; each section by its benchmark under bench/.\n',
  );
  const begin = `<!-- bench:${id} -->`;
  const end = `<!-- /bench:${id} -->`;
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  const re = new RegExp(`${begin}[\\s\\S]*?${end}`);
  await writeFile(file, re.test(text) ? text.replace(re, block) : `${text.trimEnd()}\n\n${block}\n`);
}
