// A hidden prompt for the backup access code (`dip backup seal|open` on a terminal): nothing
// typed is echoed, so the code never lands in the terminal's scrollback or the shell history.
// The streams are injected, so tests drive it with a fake TTY instead of a real one.

/** The part of process.stdin the prompt uses. */
export interface PromptInput {
  isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  removeListener(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

/** The user gave up (Ctrl-C, or Ctrl-D on an empty line). */
export class PromptAborted extends Error {
  override readonly name = 'PromptAborted';
  constructor() {
    super('prompt aborted');
  }
}

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const BACKSPACE = new Set(['\u0008', '\u007f']);

/**
 * Writes `prompt` to `write` (stderr), reads one line from `input` in raw mode without echo and
 * resolves with it. Backspace erases; Enter ends; Ctrl-C rejects with PromptAborted.
 */
export function readHidden(input: PromptInput, write: (text: string) => void, prompt: string): Promise<string> {
  write(prompt);
  input.setRawMode?.(true);
  return new Promise((resolve, reject) => {
    let line = '';
    const finish = (error: Error | null) => {
      input.removeListener('data', onData);
      input.setRawMode?.(false);
      input.pause();
      write('\n');
      if (error === null) resolve(line);
      else reject(error);
    };
    const onData = (chunk: Buffer | string) => {
      for (const char of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish(null);
        if (char === CTRL_C || (char === CTRL_D && line === '')) return finish(new PromptAborted());
        if (char === CTRL_D) return finish(null);
        if (BACKSPACE.has(char)) line = [...line].slice(0, -1).join('');
        else if (char >= ' ') line += char;
      }
    };
    input.on('data', onData);
    input.resume();
  });
}
