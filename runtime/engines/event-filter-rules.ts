import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DROP, type Event, type EventOutcome, routeTo } from '../tasks/types.js';

/*
 * event_filter rules: an ordered list; the first rule that matches and ends
 * (drop, pass, route) decides; `set` changes the event and goes on to the
 * next rules. An event no rule ends goes to the next engines.
 */

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const condition = z.union([
  scalar,
  z.object({ equals: scalar }).strict(),
  z.object({ regex: z.string() }).strict(),
  z.object({ in: z.array(scalar).min(1) }).strict(),
]);
const action = z.union([
  z.literal('drop'),
  z.literal('pass'),
  z.object({ set: z.record(z.string(), z.unknown()) }).strict(),
  z.object({ route: z.union([z.string(), z.array(z.string()).min(1)]) }).strict(),
]);
const rule = z.object({ name: z.string().optional(), match: z.record(z.string(), condition).default({}), action }).strict();
export const rulesFile = z.object({ rules: z.array(rule).default([]) }).strict();

type Condition = z.infer<typeof condition>;
type Matcher = (v: unknown) => boolean;

export interface CompiledRule {
  name: string;
  matchers: Array<[string, Matcher]>;
  action: z.infer<typeof action>;
}

function matcher(c: Condition, where: string): Matcher {
  if (c === null || typeof c !== 'object') return (v) => v === c;
  if ('equals' in c) return (v) => v === c.equals;
  if ('in' in c) return (v) => c.in.includes(v as never);
  let re: RegExp;
  try {
    re = new RegExp(c.regex);
  } catch (e) {
    throw new Error(`${where}: bad regex ${JSON.stringify(c.regex)}: ${(e as Error).message}`);
  }
  return (v) => typeof v === 'string' && re.test(v);
}

/** Parses and compiles a rules file; throws with the rule and field at fault. */
export function compileRules(text: string, file: string): CompiledRule[] {
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (e) {
    throw new Error(`${file}: not valid YAML: ${(e as Error).message}`);
  }
  const parsed = rulesFile.safeParse(doc);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new Error(`${file}: ${i.path.join('.') || '(top)'}: ${i.message}`);
  }
  return parsed.data.rules.map((r, n) => {
    const name = r.name ?? `rules.${n}`;
    return {
      name,
      action: r.action,
      matchers: Object.entries(r.match).map(([field, c]) => [field, matcher(c, `${file}: ${name}.match.${field}`)] as [string, Matcher]),
    };
  });
}

const fieldOf = (e: Event, path: string) =>
  path.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), e);

export function applyRules(rules: CompiledRule[], input: Event): EventOutcome {
  let event = input;
  for (const r of rules) {
    if (!r.matchers.every(([f, m]) => m(fieldOf(event, f)))) continue;
    const a = r.action;
    if (a === 'drop') return DROP;
    if (a === 'pass') return event;
    if ('set' in a) {
      event = { ...event, ...a.set };
      continue;
    }
    return routeTo(a.route, event);
  }
  return event;
}
