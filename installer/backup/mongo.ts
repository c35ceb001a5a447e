import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { InstallerError, lastLines, MissingTool } from '../errors.js';
import { which } from '../host/which.js';

/*
 * A MongoDB store goes through MongoDB's own tools: mongodump --archive
 * --gzip out, mongorestore --drop back. The URL holds credentials, so it is
 * handed over in a 0600 YAML file of root's private directory (--config),
 * never in a command line that ps shows to every user.
 */

const HOW_TO_GET =
  "MongoDB's database tools are not in Debian: install the mongodb-database-tools package from MongoDB's own apt repository (or their tarball) so that it is on PATH, then run this again";

export async function mongoTool(name: 'mongodump' | 'mongorestore', why: string): Promise<string> {
  const found = await which(name);
  if (!found)
    throw new MissingTool(`${why}: the store is MongoDB and ${name} is not installed (not on PATH, /usr/sbin or /sbin). ${HOW_TO_GET}`);
  return found;
}

/** Runs a tool with `--config` naming a 0600 file that holds the URL, removed afterwards. */
async function withUrl(workDir: string, url: string, tool: string, args: string[]): Promise<void> {
  const config = path.join(workDir, `.${path.basename(tool)}-${process.pid}.yaml`);
  const fh = await open(config, 'wx', 0o600);
  try {
    // A JSON string is a YAML scalar with every character escaped.
    await fh.writeFile(`uri: ${JSON.stringify(url)}\n`);
  } finally {
    await fh.close();
  }
  try {
    const r = await execa(tool, [`--config=${config}`, ...args], { reject: false, all: true });
    if (r.exitCode !== 0) throw new InstallerError(`${path.basename(tool)} failed (exit ${r.exitCode}): ${lastLines(r.all)}`);
  } finally {
    await rm(config, { force: true });
  }
}

/** The database of `url` into `archive` (gzip'd mongodump archive). */
export async function dumpMongo(url: string, archive: string, workDir: string): Promise<void> {
  const tool = await mongoTool('mongodump', 'cannot back up the store');
  await withUrl(workDir, url, tool, [`--archive=${archive}`, '--gzip']);
}

/** `archive` back into the database of `url`, each collection dropped first. */
export async function restoreMongo(url: string, archive: string, workDir: string): Promise<void> {
  const tool = await mongoTool('mongorestore', 'cannot restore the store');
  await withUrl(workDir, url, tool, [`--archive=${archive}`, '--gzip', '--drop']);
}
