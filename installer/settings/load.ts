import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { type SettingProblem, SettingsError, UsageError } from '../errors.js';
import type { Layout } from '../layout.js';
import { crossCheck } from './cross-check.js';
import { ENGINE_NAME } from './fields.js';
import { parseIni, setIniValue } from './ini-text.js';
import {
  ENGINE_DEFAULTS,
  ENGINE_SECTION,
  type EngineSettings,
  engineSchema,
  type HostIdentity,
  RENAMED_KEYS,
  type SectionName,
  type Settings,
  sectionDefaults,
  sectionSchemas,
} from './schema.js';

export interface SetOverride {
  section: string;
  key: string;
  value: string;
}

/** `section.key=value`; the section may hold a colon (`engine:che.numprocs=2`), the key never holds a dot. */
export function parseSetOption(option: string): SetOverride {
  const eq = option.indexOf('=');
  const lhs = eq < 0 ? '' : option.slice(0, eq).trim();
  const dot = lhs.lastIndexOf('.');
  if (eq < 0 || dot <= 0 || dot === lhs.length - 1) {
    throw new UsageError(`--set ${option}: expected section.key=value, e.g. --set rabbitmq.port=5673`);
  }
  return { section: lhs.slice(0, dot), key: lhs.slice(dot + 1), value: option.slice(eq + 1).trim() };
}

export interface LoadedSettings {
  settings: Settings;
  /** The canopsis.ini text with the --set edits applied (what apply writes when it changed). */
  text: string;
  /** The text on disk, undefined when canopsis.ini does not exist yet. */
  original: string | undefined;
}

export interface LoadOptions {
  layout: Layout;
  host: HostIdentity;
  sets: SetOverride[];
  /** Text of a new canopsis.ini when none exists (the rendered defaults). */
  defaultText: () => string;
  /** Pending settings migrations, applied to the operator's file before --set. */
  migrate?: (text: string) => string;
}

export async function readSettingsText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export async function loadSettings(opts: LoadOptions): Promise<LoadedSettings> {
  const original = await readSettingsText(opts.layout.settingsFile);
  let text = original === undefined ? opts.defaultText() : (opts.migrate?.(original) ?? original);
  for (const s of opts.sets) text = setIniValue(text, s.section, s.key, s.value);
  const settings = validateSettingsText(text, opts.layout.settingsFile, opts.host, opts.sets);
  return { settings, text, original };
}

/** Parses and validates the whole file, collecting every problem before failing. */
export function validateSettingsText(text: string, file: string, host: HostIdentity, sets: SetOverride[] = []): Settings {
  const problems: SettingProblem[] = [];
  const fromSet = (section: string, key: string) => sets.some((s) => s.section === section && s.key === key);
  const raw = parseIni(text);
  const defaults = sectionDefaults(host);
  const out: Record<string, unknown> = {};
  const engines: EngineSettings[] = [];

  const parseSection = (section: string, schema: z.ZodObject<z.ZodRawShape>, values: Record<string, string>) => {
    const result: Record<string, unknown> = {};
    const known = Object.keys(schema.shape);
    for (const key of Object.keys(values)) {
      const renamed = RENAMED_KEYS.find((r) => r.section === section && r.from === key);
      if (renamed) {
        problems.push({
          file,
          section,
          key,
          expected: `a key renamed in ${renamed.version}: write ${section}.${renamed.to} instead`,
          fromSet: fromSet(section, key),
        });
      } else if (!known.includes(key)) {
        problems.push({
          file,
          section,
          key,
          expected: `an unknown key; known keys of [${section}] are ${known.join(', ')}`,
          fromSet: fromSet(section, key),
        });
      }
    }
    for (const key of known) {
      const value = values[key] ?? '';
      // A quoted ini value can hold a newline; every file rendered from it would get a line of the operator's choosing.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
      if (/[\u0000-\u001f\u007f]/.test(value)) {
        problems.push({
          file,
          section,
          key,
          found: value,
          expected: 'a value without control characters (no newline, tab or NUL)',
          fromSet: fromSet(section, key),
        });
        continue;
      }
      const parsed = (schema.shape[key] as z.ZodType).safeParse(value);
      if (parsed.success) result[key] = parsed.data;
      else
        problems.push({
          file,
          section,
          key,
          found: value,
          expected: parsed.error.issues[0]?.message ?? 'a valid value',
          fromSet: fromSet(section, key),
        });
    }
    return result;
  };

  for (const name of raw.keys()) {
    if (name === '') {
      problems.push({
        file,
        section: '(top)',
        expected: `every key to be inside a [section]; found ${Object.keys(raw.get('')!).join(', ')} before the first section`,
      });
      continue;
    }
    if (name in sectionSchemas || ENGINE_SECTION.test(name)) continue;
    problems.push({ file, section: name, expected: `a known section: ${Object.keys(sectionSchemas).join(', ')} or engine:NAME` });
  }

  for (const section of Object.keys(sectionSchemas) as SectionName[]) {
    const values = { ...defaults[section], ...(raw.get(section) ?? {}) };
    out[section] = parseSection(section, sectionSchemas[section] as unknown as z.ZodObject<z.ZodRawShape>, values);
  }

  for (const [section, values] of raw) {
    const m = ENGINE_SECTION.exec(section);
    if (!m) continue;
    const name = m[1]!;
    if (!ENGINE_NAME.test(name)) {
      problems.push({
        file,
        section,
        found: name,
        expected: 'an engine name of lowercase letters, digits and _ starting with a letter (at most 40)',
      });
      continue;
    }
    const parsed = parseSection(section, engineSchema as unknown as z.ZodObject<z.ZodRawShape>, { ...ENGINE_DEFAULTS, ...values });
    engines.push({ ...(parsed as z.output<typeof engineSchema>), name });
  }

  if (problems.length === 0) {
    const settings = { ...(out as Omit<Settings, 'engines'>), engines } as Settings;
    problems.push(...crossCheck(settings, file));
    if (problems.length === 0) return settings;
  }
  throw new SettingsError(problems);
}
