/** The standalone measurement scripts' options (bench/submit-rate.mjs, bench/handler-threads.mjs): `--name N`. */

/** The whole number after `name` on the command line, or `fallback`; anything but a positive integer throws, naming
 *  the option. */
export function positiveOption(name: string, fallback: number, argv: readonly string[] = process.argv): number {
  const at = argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${argv[at + 1]}`);
  return value;
}
