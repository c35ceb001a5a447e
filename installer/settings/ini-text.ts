import ini from 'ini';

/*
 * canopsis.ini belongs to the operator: we parse it with `ini`, but when
 * --set changes a value we edit the one line in place so that the
 * operator's comments, order and layout survive.
 */

const HEADER = /^\s*\[([^\]]+)\]\s*(?:[;#].*)?$/;

function keyLine(key: string): RegExp {
  return new RegExp(`^\\s*${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*=`);
}

export function setIniValue(text: string, section: string, key: string, value: string): string {
  const lines = text.split('\n');
  const line = `${key} = ${ini.safe(value)}`;
  let start = -1;
  for (let i = 0; i < lines.length; i++) {
    const m = HEADER.exec(lines[i]!);
    if (m && m[1]!.trim() === section) {
      start = i;
      break;
    }
  }
  if (start < 0) {
    const body = text.endsWith('\n') || text === '' ? text : `${text}\n`;
    return `${body}${body === '' ? '' : '\n'}[${section}]\n${line}\n`;
  }
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    if (HEADER.test(lines[i]!)) {
      end = i;
      break;
    }
  }
  const re = keyLine(key);
  for (let i = start + 1; i < end; i++) {
    if (re.test(lines[i]!)) {
      lines[i] = line;
      return lines.join('\n');
    }
  }
  let last = start;
  for (let i = start + 1; i < end; i++) if (lines[i]!.trim() !== '') last = i;
  lines.splice(last + 1, 0, line);
  return lines.join('\n');
}

/** The text without the section (its header, keys and comments up to the next header); unchanged if it is absent. */
export function removeIniSection(text: string, section: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => (HEADER.exec(l)?.[1] ?? '').trim() === section);
  if (start < 0) return text;
  // The empty string after the text's last newline stays: the file keeps ending with one.
  let end = lines.at(-1) === '' ? lines.length - 1 : lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    if (HEADER.test(lines[i]!)) {
      end = i;
      break;
    }
  }
  // The blank line that separated it from the previous section goes with it.
  const from = start > 0 && lines[start - 1]!.trim() === '' ? start - 1 : start;
  lines.splice(from, end - from);
  return lines.join('\n');
}

/** Sections in file order, every value as the string the operator wrote. */
export function parseIni(text: string): Map<string, Record<string, string>> {
  const parsed = ini.parse(text) as Record<string, unknown>;
  const out = new Map<string, Record<string, string>>();
  const top: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const section: Record<string, string> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) section[k] = stringOf(v);
      out.set(name, section);
    } else {
      top[name] = stringOf(value);
    }
  }
  if (Object.keys(top).length > 0) out.set('', top);
  return out;
}

function stringOf(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map(stringOf).join(',');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
