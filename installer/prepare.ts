import path from 'node:path';
import { SettingsError } from './errors.js';
import type { HostFacts } from './host/facts.js';
import { type Layout, layoutOf } from './layout.js';
import {
  MIGRATIONS,
  type Migration,
  type MigrationState,
  migrateSettings,
  migrationsFile,
  pending,
  readMigrationState,
} from './migrations/index.js';
import { buildContext, generatedCert, type RenderContext } from './render/context.js';
import { createRenderer } from './render/handlebars.js';
import { type RenderedFile, renderTree } from './render/render.js';
import { generatePair, readPair } from './settings/certificate.js';
import { defaultSettingsData } from './settings/default-file.js';
import { parseIni } from './settings/ini-text.js';
import { loadSettings, readSettingsText, type SetOverride } from './settings/load.js';
import { runsPostgresql, usesStore } from './settings/roles.js';
import { type HostIdentity, SECRET_KEYS, type Settings } from './settings/schema.js';
import { completeSecrets, type Secrets, type SecretValue } from './settings/secrets.js';

/*
 * settings -> context -> rendered files: everything the installer would
 * write, computed without touching the prefix.
 */

export interface Prepared {
  layout: Layout;
  facts: HostFacts;
  settings: Settings;
  secrets: Secrets;
  ctx: RenderContext;
  /** Rendered files plus canopsis.ini and canopsis-secrets.ini when they must be written. */
  files: RenderedFile[];
  /** Migrations not yet run on this prefix (their settings part is already in `files`). */
  migrations: Migration[];
  migrationState: MigrationState;
  /** What preparing changed on its own that the operator should hear of. */
  notes: string[];
}

/**
 * The generated certificate pair as settings files (kept once made), when
 * the webserver serves HTTPS without a certificate of the operator's. Without
 * openssl yet (a fresh host, before its packages) there is none: the
 * dependency step installs openssl and prepares again.
 */
async function certificateFiles(layout: Layout, settings: Settings, facts: HostFacts): Promise<RenderedFile[]> {
  const w = settings.webserver;
  if (!w.tls || w.tls_cert || w.tls_key) return [];
  const files = generatedCert(layout);
  const pair = (await readPair(files.cert, files.key)) ?? (facts.binaries.openssl ? await generatePair(facts.binaries.openssl) : undefined);
  if (!pair) return [];
  return [
    { target: path.relative(layout.prefix, files.cert), content: pair.cert, mode: 0o644, secret: false, kind: 'settings' },
    { target: path.relative(layout.prefix, files.key), content: pair.key, mode: 0o640, secret: true, kind: 'settings' },
  ];
}

/** Credential keys found in a canopsis.ini text (an older release kept the MongoDB URL there). */
function secretsIn(text: string): SecretValue[] {
  const ini = parseIni(text);
  return SECRET_KEYS.flatMap((k) => {
    const v = ini.get(k.section)?.[k.key];
    return v ? [{ section: k.section, key: k.key, value: v }] : [];
  });
}

/** The text without the credential keys. */
function withoutSecrets(text: string): string {
  let section = '';
  const lines = text.split('\n');
  return lines
    .filter((line) => {
      const sec = /^\s*\[([^\]]+)\]/.exec(line);
      if (sec) section = sec[1]!.trim();
      const key = /^\s*([^=;#\s]+)\s*=/.exec(line)?.[1];
      return !(key && SECRET_KEYS.some((k) => k.section === section && k.key === key));
    })
    .join('\n');
}

export { migrationsFile } from './migrations/index.js';

export const SETTINGS_TARGET = 'etc/canopsis.ini';
export const SECRETS_TARGET = 'etc/canopsis-secrets.ini';

export function hostIdentity(facts: HostFacts): HostIdentity {
  return { root: facts.root, user: facts.user, group: facts.group };
}

export async function prepare(prefix: string, facts: HostFacts, sets: SetOverride[]): Promise<Prepared> {
  const layout = layoutOf(prefix);
  const render = createRenderer();
  const host = hostIdentity(facts);
  const defaultText = await render('templates/canopsis.ini.hbs', defaultSettingsData(host));
  const migrationState = await readMigrationState(migrationsFile(layout));
  const todo = pending(MIGRATIONS, migrationState);
  // Credentials go to the secrets file: from --set, and out of a canopsis.ini that still holds them.
  const isSecret = (s: SetOverride) => SECRET_KEYS.some((k) => k.section === s.section && k.key === s.key);
  const moved = secretsIn((await readSettingsText(layout.settingsFile)) ?? '');
  const loaded = await loadSettings({
    layout,
    host,
    sets: sets.filter((s) => !isSecret(s)),
    defaultText: () => defaultText,
    migrate: (t) => withoutSecrets(migrateSettings(t, todo)),
  });
  const secretsOnDisk = await readSettingsText(layout.secretsFile);
  const secretsTarget = path.relative(layout.prefix, layout.secretsFile);
  const secrets = completeSecrets(
    secretsOnDisk,
    [...moved, ...sets.filter(isSecret).map((s) => ({ ...s, fromSet: true }))],
    secretsTarget,
    undefined,
    runsPostgresql(loaded.settings) ? loaded.settings.store.postgresql_port : undefined,
  );
  // A host that uses a PostgreSQL it does not run needs the site's URL (the store host's secrets file has it).
  if (loaded.settings.store.backend === 'postgresql' && usesStore(loaded.settings) && !secrets.secrets.store.postgresql_url)
    throw new SettingsError([
      {
        file: secretsTarget,
        section: 'store',
        key: 'postgresql_url',
        expected:
          "the store's URL, as the store host's own canopsis-secrets.ini has it with that host's address: --set store.postgresql_url=postgresql://canopsis:PASSWORD@STORE-HOST:5432/canopsis",
      },
    ]);
  const ctx = buildContext(loaded.settings, secrets.secrets, layout, facts);
  const rendered = await renderTree(ctx, render);
  // The operator's own files are written only when new or changed by --set.
  const own: RenderedFile[] = [
    { target: SETTINGS_TARGET, content: loaded.text, mode: 0o644, secret: false, kind: 'settings' },
    { target: SECRETS_TARGET, content: secrets.text, mode: 0o640, secret: true, kind: 'settings' },
    ...(await certificateFiles(layout, loaded.settings, facts)),
  ];
  return {
    layout,
    facts,
    settings: loaded.settings,
    secrets: secrets.secrets,
    ctx,
    files: [...own, ...rendered],
    migrations: todo,
    migrationState,
    notes: moved.map((m) => `[${m.section}] ${m.key} holds credentials: moved from ${SETTINGS_TARGET} to ${SECRETS_TARGET}`),
  };
}

/** The same tree rendered for another prefix (the validation staging copy). */
export async function renderFor(prefix: string, p: Prepared, account?: { user: string; group: string }): Promise<RenderedFile[]> {
  const settings = account ? { ...p.settings, canopsis: { ...p.settings.canopsis, ...account } } : p.settings;
  const ctx = buildContext(settings, p.secrets, layoutOf(prefix), p.facts);
  return renderTree(ctx);
}
