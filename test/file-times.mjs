// A second reporter for node's test runner: the wall time of each test file,
// slowest first, at the end of the run (issue 14 compares them over time).
// Each file is a top-level test named by its path; its test:complete event
// carries the file's duration.
import path from 'node:path';

export default async function* fileTimes(source) {
  const rows = [];
  for await (const { type, data } of source) {
    if (type !== 'test:complete' || !data.file || data.nesting !== 0) continue;
    if (data.name !== data.file && data.name !== path.relative(process.cwd(), data.file)) continue;
    rows.push({
      file: path.relative(process.cwd(), data.file),
      s: (data.details?.duration_ms ?? 0) / 1000,
      failed: data.details?.passed === false,
    });
  }
  rows.sort((a, b) => b.s - a.s);
  const total = rows.reduce((t, r) => t + r.s, 0);
  yield `\nper-file wall time (s), slowest first (sum ${total.toFixed(0)} s over ${rows.length} files):\n`;
  for (const r of rows) yield `${r.s.toFixed(1).padStart(8)}  ${r.file}${r.failed ? '  (failed)' : ''}\n`;
}
