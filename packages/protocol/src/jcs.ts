import canonicalizeModule from 'canonicalize';

type Canonicalize = (input: unknown) => string | undefined;

// `canonicalize` is CommonJS whose typings declare an ES default export; under NodeNext the
// default import is module.exports itself at run time. Accept either shape.
const mod = canonicalizeModule as unknown as Canonicalize | { default: Canonicalize };
const canonicalizeFn: Canonicalize = typeof mod === 'function' ? mod : mod.default;

/** RFC 8785 JSON Canonicalization Scheme text of a JSON value. */
export function jcs(value: unknown): string {
  const text = canonicalizeFn(value);
  if (text === undefined) throw new TypeError('value is not JSON-serialisable');
  return text;
}
