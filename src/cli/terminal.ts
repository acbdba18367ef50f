/** Where porch writes, and what it knows of the terminal. Injected so tests can drive commands in-process. */
export interface Terminal {
  write(text: string): void;
  error(line: string): void;
  /** stdout is a terminal (live view), not a pipe or file (plain lines). */
  readonly isTTY: boolean;
  readonly color: boolean;
  readonly columns: number;
  readonly rows: number;
}

export function processTerminal(noColor: boolean): Terminal {
  const out = process.stdout;
  const isTTY = out.isTTY === true;
  return {
    write: (text) => void out.write(text),
    error: (line) => void process.stderr.write(`${line}\n`),
    isTTY,
    color: isTTY && !noColor && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb',
    get columns() {
      return out.columns || 100;
    },
    get rows() {
      return out.rows || 40;
    },
  };
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90, bold: 1, dim: 2 } as const;
export type Colour = keyof typeof CODES;

/** Paints text when colour is on. */
export function painter(on: boolean): (colour: Colour, text: string) => string {
  return on ? (colour, text) => `\x1b[${CODES[colour]}m${text}\x1b[0m` : (_colour, text) => text;
}

// ANSI colour codes (SGR): ESC [ … m.
const SGR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
const SGR_SPLIT = new RegExp(`(${String.fromCharCode(27)}\\[[0-9;]*m)`);

/** Pads or cuts to `width` visible characters (code points; ANSI codes not counted). */
export function fit(text: string, width: number): string {
  const visible = [...text.replace(SGR, '')].length;
  if (visible <= width) return text + ' '.repeat(width - visible);
  return cut(text, width);
}

/** Cuts to at most `width` visible characters, keeping colour codes balanced. */
export function cut(text: string, width: number): string {
  let out = '';
  let seen = 0;
  let coloured = false;
  for (const part of text.split(SGR_SPLIT)) {
    if (part.startsWith('\x1b[')) {
      out += part;
      coloured = part !== '\x1b[0m';
      continue;
    }
    const chars = [...part];
    if (seen + chars.length <= width) {
      out += part;
      seen += chars.length;
      continue;
    }
    out += chars.slice(0, Math.max(0, width - seen - 1)).join('') + '…';
    break;
  }
  return coloured ? `${out}\x1b[0m` : out;
}

// C0 controls but tab and newline, DEL, and the C1 range: what a terminal may take as a command.
const CONTROLS = new RegExp(`[${String.fromCharCode(0)}-${String.fromCharCode(8)}${String.fromCharCode(11)}-${String.fromCharCode(31)}${String.fromCharCode(127)}-${String.fromCharCode(159)}]`, 'g');

/**
 * Text from tasks, agents and the store made safe to print: control characters (an ESC that
 * would start a terminal escape sequence, a BEL, a carriage return) are shown as `\xNN`
 * instead of being sent to the terminal. Anyone who can submit a task chooses its id and its
 * handler's error messages, and an operator reads them in porch.
 */
export function safe(text: string): string {
  return text.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A plain text table: columns padded to their widest cell (cells are made `safe`). */
export function table(header: string[], cells: string[][]): string {
  const rows = cells.map((row) => row.map((cell) => safe(cell).replace(/\n/g, ' ')));
  const widths = header.map((h, i) => Math.min(60, Math.max([...h].length, ...rows.map((r) => [...(r[i] ?? '')].length))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? cut(c, 200) : fit(c, widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
