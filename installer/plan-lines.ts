import { createTwoFilesPatch } from 'diff';
import type { PlannedFile } from './apply/plan.js';
import type { InstallState } from './install.js';
import { maskSecrets } from './report.js';
import type { Secrets } from './settings/secrets.js';

/* What `plan` prints: each file it would change, with a diff of ours against what is there, secrets masked. */

export function diffOf(p: PlannedFile, secrets: Secrets | undefined, extra: string[] = []): string {
  const before = maskSecrets(p.before ?? '', secrets, extra);
  const after = maskSecrets(p.file?.content ?? '', secrets, extra);
  return createTwoFilesPatch(`a/${p.target}`, `b/${p.target}`, before, after, '', '', { context: 2 });
}

export function planLines(state: InstallState, withDiffs: boolean): string[] {
  const planned = state.planned ?? [];
  const secrets = state.prepared?.secrets;
  const hash = state.prepared?.ctx.rabbitmq.passwordHash;
  const lines: string[] = [];
  for (const p of planned) {
    if (p.action === 'unchanged' || (p.action === 'keep' && !p.write)) continue;
    const label = {
      create: 'create ',
      update: 'update ',
      chmod: 'chmod  ',
      unchanged: '',
      keep: 'keep   ',
      dist: 'dist   ',
      remove: 'remove ',
      orphan: 'orphan ',
      replace: 'replace',
    }[p.action];
    const note =
      p.action === 'dist'
        ? `  (your edit is kept; ours goes to ${p.target}.dist)`
        : p.action === 'orphan'
          ? '  (no longer ours; edited, left in place)'
          : p.action === 'replace'
            ? `  (ours replaces your edit, saved as ${p.target}.operator)`
            : '';
    lines.push(`${label}${p.target}${note}`);
    if (withDiffs && (p.action === 'update' || p.action === 'dist' || p.action === 'replace') && p.file?.kind !== 'program') {
      lines.push(
        ...diffOf(p, secrets, hash ? [hash] : [])
          .trimEnd()
          .split('\n')
          .slice(2)
          .map((l) => `    ${l}`),
      );
    }
  }
  if (lines.length === 0) lines.push('nothing to change');
  return lines;
}
