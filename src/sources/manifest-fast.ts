// A faster reader for multi-document YAML manifests: js-yaml reads about ten times as fast as the
// `yaml` package, and JSON.parse a one-line JSON document several times faster still; manifest.ts
// keeps `yaml` for what must stay exact (error messages with line and column, one broken document
// among good ones). This reader gives the documents' values exactly as the `yaml` path would, or
// undefined, and the caller then reads the whole text with `yaml`.

import { CORE_SCHEMA, defineMappingTag, load, mergeTag } from 'js-yaml';
import { Composer, Parser } from 'yaml';
import { STEP_EVERY } from '../model/steps.ts';

/**
 * A `{}` mapping whose keys are the strings `yaml`'s toJS() makes of them (a null key is '', where
 * js-yaml's own map says 'null'). A collection key is refused: the document is then read by `yaml`.
 */
const yamlKeysMapTag = defineMappingTag<Record<string, unknown>>('tag:yaml.org,2002:map', {
  create: () => ({}),
  identify: (data) => data !== null && typeof data === 'object' && !Array.isArray(data),
  addPair: (map, key, value) => {
    if (key !== null && typeof key === 'object') return 'a collection as a key';
    const name = jsKey(key);
    if (name === '__proto__') Object.defineProperty(map, name, { value, enumerable: true, configurable: true, writable: true });
    else map[name] = value;
    return '';
  },
  has: (map, key) => (key === null || typeof key !== 'object') && Object.hasOwn(map, jsKey(key)),
  keys: (map) => Object.keys(map),
  get: (map, key) => map[jsKey(key)],
});

function jsKey(key: unknown): string {
  return key === null ? '' : String(key);
}

// The YAML 1.2 core schema (no timestamps, no yes/no booleans, no 0b or 1_000 numbers), as the
// `yaml` package reads it, with `<<` merge keys as kubectl reads them.
const SCHEMA = CORE_SCHEMA.withTags(mergeTag, yamlKeysMapTag);

/**
 * Anything the document split below would get wrong or that js-yaml reads otherwise: directives and
 * `...` end markers, a line starting with `---` that is not just the marker (content after it, a
 * tab), a byte-order mark (which may hide a `---`), and a bare CR line end (a line break to js-yaml,
 * not to `yaml`).
 */
const UNSPLITTABLE = /(?<![^\n])(?:%|\.\.\.(?![^ \t\r\n])|---(?! *\r?(?:\n|$)))|\uFEFF|\r(?!\n)/;

/** A line that is only a document marker. */
const MARKER = /(?<![^\n])--- *\r?(?:\n|$)/g;

/** Nothing but blank lines and comments: an empty document (null), or no document before the first `---`. */
const EMPTY = /^(?:[ \t\r]*(?:#[^\n]*)?(?:\n|$))*$/;

/**
 * Where `yaml` refuses what js-yaml reads: an implicit key over 1024 characters (only possible on a
 * longer line), and more than 100 alias expansions (possible only with over 12 aliases: the largest
 * product of counts summing to 12 is 81). Such a document is read by `yaml`.
 */
const MAX_LINE = 1024;
const MAX_ALIASES = 12;

/**
 * The values of the text's documents, in the order and with the indexes `yaml`'s Composer gives
 * them, yielding between documents; undefined when the text cannot be split exactly or some document
 * does not parse, so that the caller's `yaml` read reports it as it always has.
 */
export function* fastDocuments(text: string): Generator<void, unknown[] | undefined> {
  const values: unknown[] = [];
  // Chunk by chunk, lazily: a regex over a whole 40 MB text at once would hold the event loop for tens of ms.
  const markers = text.matchAll(MARKER);
  let start = 0;
  for (let chunks = 1; ; chunks++) {
    const marker = markers.next().value;
    const chunk = text.slice(start, marker?.index ?? text.length);
    const first = start === 0;
    start = marker === undefined ? text.length : marker.index + marker[0].length;
    // Every chunk starts a line, so this sees each line start of the text.
    if (UNSPLITTABLE.test(chunk)) return undefined;
    if (EMPTY.test(chunk)) {
      // Before the first `---`, comments and blank lines are no document of their own.
      if (!first) values.push(null);
    } else {
      const value = readChunk(chunk);
      if (value === FAILED) return undefined;
      values.push(value);
    }
    if (marker === undefined) break;
    if (chunks % STEP_EVERY === 0) yield;
  }
  return values;
}

const FAILED = Symbol('failed');

function readChunk(chunk: string): unknown {
  if (chunk.charCodeAt(0) === OPEN_BRACE) {
    const value = readJsonLine(chunk);
    if (value !== FAILED) return value;
  }
  if (!hasLongLine(chunk) && countAliases(chunk) <= MAX_ALIASES) {
    try {
      return load(chunk, { schema: SCHEMA, maxTotalMergeKeys: -1 });
    } catch {
      // Read by `yaml` below: js-yaml refuses some documents `yaml` takes (a collection or an alias as a key, control characters).
    }
  }
  const docs = [...new Composer({ merge: true }).compose(new Parser().parse(chunk))];
  const doc = docs[0];
  if (docs.length !== 1 || !doc || doc.errors.length > 0) return FAILED;
  try {
    return doc.toJS();
  } catch {
    return FAILED;
  }
}

const OPEN_BRACE = 0x7b;
/** js-yaml's limit, where a deeper document goes to `yaml`, which overflows its stack on very deep ones. */
const MAX_DEPTH = 100;

/**
 * JSON.parse's value for a document that is one line of JSON (`kubectl get -o json | jq -c`), read
 * several times faster than by js-yaml; FAILED when JSON.parse refuses it or `yaml` could read it
 * otherwise: a repeated key (JSON keeps the last one, `yaml` refuses the document), a tab outside
 * a string, nesting deeper than MAX_DEPTH. A repeated key is seen as more `:` outside strings than
 * keys in the value.
 */
function readJsonLine(chunk: string): unknown {
  let colons = 0;
  let depth = 0;
  for (let i = 0; i < chunk.length; i++) {
    const c = chunk.charCodeAt(i);
    if (c === 0x22) {
      i = stringEnd(chunk, i);
      if (i === -1) return FAILED;
    } else if (c === 0x3a) colons++;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_DEPTH) return FAILED;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x09 || (c === 0x0a && i !== chunk.length - 1)) return FAILED;
  }
  let value: unknown;
  try {
    value = JSON.parse(chunk);
  } catch {
    return FAILED;
  }
  return countKeys(value) === colons ? value : FAILED;
}

/** The index of the quote that closes the JSON string opened at `open`, or -1. */
function stringEnd(text: string, open: number): number {
  for (let i = text.indexOf('"', open + 1); i !== -1; i = text.indexOf('"', i + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
  return -1;
}

function countKeys(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  let count = 0;
  if (Array.isArray(value)) {
    for (const item of value) count += countKeys(item);
    return count;
  }
  for (const key in value) count += 1 + countKeys((value as Record<string, unknown>)[key]);
  return count;
}

/** At least the number of aliases in the text: every `*`. */
function countAliases(chunk: string): number {
  let count = 0;
  for (let i = chunk.indexOf('*'); i !== -1; i = chunk.indexOf('*', i + 1)) count++;
  return count;
}

/** Whether some line is longer than MAX_LINE (an indexOf walk: a regex for it backtracks on every line). */
function hasLongLine(chunk: string): boolean {
  if (chunk.length <= MAX_LINE) return false;
  let start = 0;
  for (let end = chunk.indexOf('\n'); end !== -1; end = chunk.indexOf('\n', start)) {
    if (end - start > MAX_LINE) return true;
    start = end + 1;
  }
  return chunk.length - start > MAX_LINE;
}
