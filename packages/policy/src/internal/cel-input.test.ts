import { describe, expect, it } from 'vitest';
import { toCelInput } from './cel-input.js';
import { PolicyError } from '../errors.js';

describe('toCelInput', () => {
  it('maps JSON to CEL: objects to maps, integers to int, other numbers to double', () => {
    const v = toCelInput({ a: 1, b: 1.5, c: [true, null, 'x'], d: { e: 2 } }) as Map<string, unknown>;
    expect(v.get('a')).toBe(1n);
    expect(v.get('b')).toBe(1.5);
    expect(v.get('c')).toEqual([true, null, 'x']);
    expect((v.get('d') as Map<string, unknown>).get('e')).toBe(2n);
  });

  it('refuses non-JSON values, non-finite numbers, deep nesting and huge inputs with a typed error', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    for (const bad of [{ f: () => 1 }, { d: new Date() }, { n: Number.NaN }, { n: Infinity }, deep, { big: Array.from({ length: 100_001 }, () => 0) }, 'x'.repeat(1024 * 1024 + 1)]) {
      expect(() => toCelInput(bad)).toThrow(PolicyError);
    }
  });

  it('ignores inherited properties (prototype pollution cannot add claims)', () => {
    const o = Object.create({ injected: 'yes' }) as Record<string, unknown>;
    expect(() => toCelInput(o)).toThrow(PolicyError); // not a plain object
    const plain = JSON.parse('{"__proto__": {"x": 1}, "y": 2}') as unknown;
    const m = toCelInput(plain) as Map<string, unknown>;
    expect([...m.keys()].sort()).toEqual(['__proto__', 'y']);
  });
});
