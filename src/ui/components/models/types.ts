import type { ColType, DataType, ObjectType } from '../../../lib/mlflow/signature.ts';

/** One-line label of a type; composite parts are shown by the tree below it. */
export function shortType(t: ColType | DataType | ObjectType): string {
  if (typeof t === 'string') return t;
  switch (t.type) {
    case 'array':
      return `Array(${shortType(t.items)})`;
    case 'map':
      return `Map(string → ${shortType(t.values)})`;
    case 'object':
      return 'Object';
    case 'any':
      return 'Any';
    default:
      return t.type;
  }
}

/** True when a type has inner structure worth a tree (an object somewhere inside). */
export function isNested(t: ColType | DataType | ObjectType): boolean {
  if (typeof t === 'string') return false;
  switch (t.type) {
    case 'object':
      return true;
    case 'array':
      return isNested(t.items);
    case 'map':
      return isNested(t.values);
    default:
      return false;
  }
}

/** How many nodes the tree of a type has (to decide whether to show it expanded). */
export function treeSize(t: ColType | DataType | ObjectType): number {
  if (typeof t === 'string') return 1;
  switch (t.type) {
    case 'object':
      return 1 + Object.values(t.properties).reduce((n, p) => n + treeSize(p.type), 0);
    case 'array':
      return treeSize(t.items);
    case 'map':
      return treeSize(t.values);
    default:
      return 1;
  }
}

/** The object a composite type holds (through arrays and maps), whose properties the tree lists. */
export function innerObject(t: ColType | DataType | ObjectType): ObjectType | undefined {
  if (typeof t === 'string') return undefined;
  switch (t.type) {
    case 'object':
      return t;
    case 'array':
      return innerObject(t.items);
    case 'map':
      return innerObject(t.values);
    default:
      return undefined;
  }
}
