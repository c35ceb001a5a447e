import type { HostFacts } from './host/facts.js';
import { layoutOf, type Layout } from './layout.js';
import { buildContext, type RenderContext } from './render/context.js';
import { createRenderer } from './render/handlebars.js';
import { renderTree, type RenderedFile } from './render/render.js';
import { defaultSettingsData } from './settings/default-file.js';
import { loadSettings, type SetOverride } from './settings/load.js';
import type { HostIdentity, Settings } from './settings/schema.js';
import { completeSecrets, type Secrets } from './settings/secrets.js';
import { readSettingsText } from './settings/load.js';
import path from 'node:path';
import { MIGRATIONS, migrateSettings, pending, readMigrationState, type Migration, type MigrationState } from './migrations/index.js';

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
}

export const migrationsFile = (layout: Layout) => path.join(layout.pkgmgr, 'migrations.json');

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
  const loaded = await loadSettings({ layout, host, sets, defaultText: () => defaultText, migrate: (t) => migrateSettings(t, todo) });
  const secretsOnDisk = await readSettingsText(layout.secretsFile);
  const secrets = completeSecrets(secretsOnDisk);
  const ctx = buildContext(loaded.settings, secrets.secrets, layout, facts);
  const rendered = await renderTree(ctx, render);
  // The operator's own files are written only when new or changed by --set.
  const own: RenderedFile[] = [
    { target: SETTINGS_TARGET, content: loaded.text, mode: 0o644, secret: false, kind: 'settings' },
    { target: SECRETS_TARGET, content: secrets.text, mode: 0o600, secret: true, kind: 'settings' },
  ];
  return { layout, facts, settings: loaded.settings, secrets: secrets.secrets, ctx, files: [...own, ...rendered], migrations: todo, migrationState };
}

/** The same tree rendered for another prefix (the validation staging copy). */
export async function renderFor(prefix: string, p: Prepared, account?: { user: string; group: string }): Promise<RenderedFile[]> {
  const settings = account ? { ...p.settings, canopsis: { ...p.settings.canopsis, ...account } } : p.settings;
  const ctx = buildContext(settings, p.secrets, layoutOf(prefix), p.facts);
  return renderTree(ctx);
}
