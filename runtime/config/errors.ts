/** A configuration problem found before connecting: names the file and what is wrong. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}
