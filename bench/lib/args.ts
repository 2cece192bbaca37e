/** `--name value` and `--flag` options after the script name. */
export function parseArgs(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) {
      out.set(a.slice(2, eq), a.slice(eq + 1));
    } else if (i + 1 < argv.length && !(argv[i + 1] ?? '').startsWith('--')) {
      out.set(a.slice(2), argv[i + 1] ?? '');
      i++;
    } else {
      out.set(a.slice(2), 'true');
    }
  }
  return out;
}

export function intArg(args: Map<string, string>, name: string, def: number): number {
  const v = args.get(name);
  if (v === undefined) return def;
  const n = Number(v.replaceAll('_', ''));
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, got "${v}"`);
  return n;
}

export function listArg(args: Map<string, string>, name: string, def: number[]): number[] {
  const v = args.get(name);
  if (v === undefined) return def;
  return v.split(',').map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be whole numbers, got "${v}"`);
    return n;
  });
}
