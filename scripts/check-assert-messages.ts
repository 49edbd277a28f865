// Every assert.ok / assert(...) in a test carries a message. On Node 20 a message-less one that
// fails inside some async paths made the test hang until the file's timeout instead of naming the
// line; a message also says what broke. Uses the TypeScript compiler API, not a regular expression.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export interface MissingMessage {
  file: string;
  line: number;
  call: string;
}

const ASSERT_MODULES = new Set(['node:assert', 'node:assert/strict', 'assert', 'assert/strict']);
const TOP_FOLDERS = ['protocol', 'enclave', 'parent', 'client', 'emulators', 'store', 'issuer', 'service', 'common', 'scripts', 'test'];

/** The local names under which `source` imports node:assert itself and its `ok`. */
function assertNames(source: ts.SourceFile): { modules: Set<string>; oks: Set<string> } {
  const modules = new Set<string>();
  const oks = new Set<string>();
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue;
    if (!ASSERT_MODULES.has(statement.moduleSpecifier.text)) continue;
    const clause = statement.importClause;
    if (clause?.name) modules.add(clause.name.text);
    const bindings = clause?.namedBindings;
    if (bindings && ts.isNamespaceImport(bindings)) modules.add(bindings.name.text);
    if (bindings && ts.isNamedImports(bindings)) {
      for (const element of bindings.elements) {
        const imported = (element.propertyName ?? element.name).text;
        if (imported === 'ok') oks.add(element.name.text);
        if (imported === 'strict' || imported === 'default') modules.add(element.name.text);
      }
    }
  }
  return { modules, oks };
}

/** Calls of assert(x), assert.ok(x) or ok(x) with one argument and no message, in one file. */
export function findMissingMessages(file: string, text: string): MissingMessage[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const { modules, oks } = assertNames(source);
  const out: MissingMessage[] = [];
  const isOkCall = (callee: ts.Expression): boolean =>
    (ts.isIdentifier(callee) && (modules.has(callee.text) || oks.has(callee.text))) ||
    (ts.isPropertyAccessExpression(callee) && callee.name.text === 'ok' && ts.isIdentifier(callee.expression) && modules.has(callee.expression.text));
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && isOkCall(node.expression)) {
      const args = node.arguments;
      if (args.length < 2 && !(args.length === 1 && ts.isSpreadElement(args[0]!))) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
        out.push({ file, line: line + 1, call: node.expression.getText(source) });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** Test files and test support files: every .ts under a `test` folder, and every *.test.ts. */
export function testFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, inTest: boolean): void => {
    for (const name of readdirSync(dir)) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path, inTest || name === 'test');
      else if (name.endsWith('.ts') && (inTest || name.endsWith('.test.ts'))) out.push(relative(root, path).split(sep).join('/'));
    }
  };
  for (const top of TOP_FOLDERS) {
    try {
      walk(join(root, top), top === 'test');
    } catch {
      // A folder that does not exist holds no tests.
    }
  }
  return out.sort();
}

export function checkAssertMessages(root: string): MissingMessage[] {
  return testFiles(root).flatMap((file) => findMissingMessages(file, readFileSync(join(root, file), 'utf8')));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const missing = checkAssertMessages(root);
  for (const m of missing) console.error(`${m.file}:${m.line}: ${m.call}(...) has no message`);
  console.log(missing.length === 0 ? 'assert messages: ok' : `assert messages: ${missing.length} without a message`);
  process.exitCode = missing.length === 0 ? 0 : 1;
}
