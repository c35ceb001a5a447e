import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (or release) root this installer runs from: templates/, systemd/ and dist/ live there. */
export const SOURCE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
