import { catalogOf } from '../services/index.js';
import type { RenderContext } from './context.js';
import type { FileSpec } from './file-spec.js';

/*
 * The list of files the installer owns under the prefix, as data: the
 * platform's and each enabled service's (installer/services/). Conditions
 * there decide which services exist; templates never do.
 */

export type { FileKind, FileSpec } from './file-spec.js';
export { UNIT_DIR } from './file-spec.js';

export const catalog = (ctx: RenderContext): FileSpec[] => catalogOf(ctx);

/** The systemd units of a context, instances included, as systemd-analyze verify wants them named. */
export function unitNames(ctx: RenderContext): string[] {
  return ctx.systemd.wants.concat('canopsis.target');
}
