/* The preflight checks by name (--skip-check), apart from the checks themselves: the command line names them before loading them. */
export const CHECK_NAMES = ['node', 'memory', 'disk', 'space', 'ports', 'binaries', 'user', 'prefix', 'remote'] as const;
export type CheckName = (typeof CHECK_NAMES)[number];
