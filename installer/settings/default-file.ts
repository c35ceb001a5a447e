import { DEFAULT_ENGINES, ENGINE_DEFAULTS, type HostIdentity, sectionDefaults } from './schema.js';

/** Template data of a new canopsis.ini: every key with its default, engines in chain order. */
export function defaultSettingsData(host: HostIdentity) {
  return {
    ...sectionDefaults(host),
    engines: DEFAULT_ENGINES.map(([name, values]) => ({
      name,
      values: Object.fromEntries(Object.entries({ ...ENGINE_DEFAULTS, ...values }).filter(([, v]) => v !== '')),
    })),
  };
}
