// Runs worker.ts in several OS processes against one PostgreSQL schema, started together.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

export async function runWorkers<T>(
  mode: 'issue' | 'reserve',
  connectionString: string,
  schema: string,
  processes: number,
  countEach: number,
): Promise<T[][]> {
  const children = Array.from({ length: processes }, (_, index) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, mode, connectionString, schema, String(index), String(countEach)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.setEncoding('utf8');
    const ready = new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: string) => {
        output += chunk;
        if (output.startsWith('ready\n')) resolve();
      });
    });
    const done = new Promise<T[]>((resolve, reject) => {
      child.on('exit', (code) => {
        if (code !== 0) return reject(new Error(`worker ${index} exited with ${code}`));
        resolve(JSON.parse(output.slice('ready\n'.length)) as T[]);
      });
    });
    return { child, ready, done };
  });
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.child.stdin.end('go\n');
  return Promise.all(children.map((c) => c.done));
}
