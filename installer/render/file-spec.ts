/*
 * One file the installer owns under the prefix, as data: which template
 * renders which path, with which mode, for whom.
 */

/** settings: the operator's canopsis.ini and secrets, written only when new or changed by --set. */
export type FileKind = 'conffile' | 'program' | 'settings';

export interface FileSpec {
  /** Path relative to the prefix. */
  target: string;
  /** Template path relative to the source root. */
  template: string;
  mode: number;
  /** Holds credentials: root's, readable by the service group only (0640), never shown in diffs. */
  secret: boolean;
  kind: FileKind;
  /**
   * The service user's own (root writes it into a root-owned directory):
   * for a credential a program insists on owning, as Erlang does its cookie.
   */
  serviceOwned?: boolean;
  /** Extra template data (the engine of a per-engine file). */
  data?: Record<string, unknown>;
}

export const UNIT_DIR = 'etc/systemd/system';

export const conf = (target: string, template: string, secret = false): FileSpec => ({
  target,
  template,
  mode: secret ? 0o640 : 0o644,
  secret,
  kind: 'conffile',
});

/** A credential file the service user owns, mode 0400, in a directory of root's. */
export const ownedSecret = (target: string, template: string): FileSpec => ({
  target,
  template,
  mode: 0o400,
  secret: true,
  kind: 'conffile',
  serviceOwned: true,
});

export const program = (target: string, template: string, data?: Record<string, unknown>): FileSpec => ({
  target,
  template,
  mode: 0o755,
  secret: false,
  kind: 'program',
  ...(data ? { data } : {}),
});
