// Reads an ONNX model file (protobuf) far enough to recognise a Phi-3 decoder and find its
// weights: nodes, attributes, graph inputs/outputs and initializer locations (inline bytes or
// ranges of an external data file). Everything read is untrusted: every length is checked and
// errors name the file and the field.

export class OnnxFormatError extends Error {
  override name = 'OnnxFormatError';
}

// ---------------------------------------------------------------------------------------------
// Protobuf wire format

interface Field {
  field: number;
  wire: number;
  /** varint value (wire 0) */
  int: bigint;
  /** fixed32/fixed64 value bytes, or the length-delimited payload */
  bytes: Uint8Array;
}

class Reader {
  pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  fail(message: string): never {
    throw new OnnxFormatError(`${this.what}: ${message} at byte ${this.pos}`);
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) this.fail('truncated varint');
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
    return this.fail('varint longer than 10 bytes');
  }

  take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) this.fail(`field of ${n} bytes runs past the end`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  field(): Field {
    const key = this.varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    const empty = this.buf.subarray(0, 0);
    switch (wire) {
      case 0:
        return { field, wire, int: this.varint(), bytes: empty };
      case 1:
        return { field, wire, int: 0n, bytes: this.take(8) };
      case 2: {
        const len = this.varint();
        if (len > BigInt(this.buf.length)) this.fail(`field ${field} length ${len} is too large`);
        return { field, wire, int: 0n, bytes: this.take(Number(len)) };
      }
      case 5:
        return { field, wire, int: 0n, bytes: this.take(4) };
      default:
        return this.fail(`unsupported wire type ${wire} (field ${field})`);
    }
  }
}

function* fields(buf: Uint8Array, what: string): Generator<Field> {
  const r = new Reader(buf, what);
  while (!r.done) yield r.field();
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
const str = (f: Field) => utf8.decode(f.bytes);
const int = (f: Field) => Number(BigInt.asIntN(64, f.int));

function ints(f: Field, what: string): number[] {
  if (f.wire === 0) return [int(f)];
  const out: number[] = [];
  const r = new Reader(f.bytes, what);
  while (!r.done) out.push(Number(BigInt.asIntN(64, r.varint())));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The model

export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 } as const;

export type AttributeValue = number | string | number[];

export interface OnnxNode {
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: Map<string, AttributeValue>;
  /** Tensor-valued attributes (Constant's and ConstantOfShape's `value`). */
  tensorAttributes?: Map<string, OnnxTensor>;
}

/** Where an initializer's bytes are. */
export type TensorData =
  | { kind: 'inline'; bytes: Uint8Array }
  | { kind: 'external'; file: string; offset: number; length: number };

export interface OnnxTensor {
  name: string;
  dataType: number;
  dims: number[];
  data: TensorData;
}

export interface OnnxValueInfo {
  name: string;
  elemType: number;
  dims: (number | string)[];
}

export interface OnnxModel {
  opsets: Map<string, number>;
  nodes: OnnxNode[];
  initializers: Map<string, OnnxTensor>;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

function readAttribute(buf: Uint8Array, what: string): [string, AttributeValue, OnnxTensor | null] {
  let name = '';
  let value: AttributeValue = [];
  let tensor: OnnxTensor | null = null;
  const list: number[] = [];
  for (const f of fields(buf, what)) {
    if (f.field === 1) name = str(f);
    else if (f.field === 5 && f.wire === 2) tensor = readTensor(f.bytes, `${what} tensor`);
    else if (f.field === 2 && f.wire === 5)
      value = new DataView(f.bytes.buffer, f.bytes.byteOffset, 4).getFloat32(0, true);
    else if (f.field === 3 && f.wire === 0) value = int(f);
    else if (f.field === 4 && f.wire === 2) value = str(f);
    else if (f.field === 8) list.push(...ints(f, `${what}.ints`));
  }
  if (list.length) value = list;
  return [name, value, tensor];
}

function readNode(buf: Uint8Array, what: string): OnnxNode {
  const node: OnnxNode = {
    opType: '',
    domain: '',
    name: '',
    inputs: [],
    outputs: [],
    attributes: new Map(),
  };
  for (const f of fields(buf, what)) {
    if (f.field === 1) node.inputs.push(str(f));
    else if (f.field === 2) node.outputs.push(str(f));
    else if (f.field === 3) node.name = str(f);
    else if (f.field === 4) node.opType = str(f);
    else if (f.field === 7) node.domain = str(f);
    else if (f.field === 5 && f.wire === 2) {
      const [k, v, t] = readAttribute(f.bytes, `${what} attribute`);
      node.attributes.set(k, v);
      if (t) (node.tensorAttributes ??= new Map()).set(k, t);
    }
  }
  return node;
}

function readTensor(buf: Uint8Array, what: string): OnnxTensor {
  let name = '';
  let dataType = 0;
  const dims: number[] = [];
  let raw: Uint8Array | null = null;
  let external = false;
  const ext = new Map<string, string>();
  let typed: { type: number; bytes: Uint8Array } | null = null;
  for (const f of fields(buf, what)) {
    if (f.field === 1) dims.push(...ints(f, `${what}.dims`));
    else if (f.field === 2) dataType = int(f);
    else if (f.field === 8) name = str(f);
    else if (f.field === 9) raw = f.bytes;
    else if (f.field === 14) external = int(f) === 1;
    else if (f.field === 13) {
      let key = '';
      let value = '';
      for (const e of fields(f.bytes, `${what}.external_data`)) {
        if (e.field === 1) key = str(e);
        else if (e.field === 2) value = str(e);
      }
      ext.set(key, value);
    } else if (f.field === 4 && f.wire === 2) typed = { type: DataType.FLOAT, bytes: f.bytes };
  }
  const where = `${what} "${name}"`;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw new OnnxFormatError(`${where}: bad dimension ${d}`);
  }
  let data: TensorData;
  if (external) {
    const file = ext.get('location');
    const offset = Number(ext.get('offset') ?? '0');
    const length = Number(ext.get('length') ?? 'NaN');
    if (!file) throw new OnnxFormatError(`${where}: external data without a location`);
    if (!(
      Number.isSafeInteger(offset) &&
      offset >= 0 &&
      Number.isSafeInteger(length) &&
      length >= 0
    )) {
      throw new OnnxFormatError(`${where}: external data needs a valid offset and length`);
    }
    data = { kind: 'external', file, offset, length };
  } else if (raw) {
    data = { kind: 'inline', bytes: raw };
  } else if (typed && typed.type === dataType) {
    // float_data is packed little-endian floats: the same bytes raw_data would hold.
    data = { kind: 'inline', bytes: typed.bytes };
  } else {
    data = { kind: 'inline', bytes: new Uint8Array(0) };
  }
  return { name, dataType, dims, data };
}

function readValueInfo(buf: Uint8Array, what: string): OnnxValueInfo {
  const info: OnnxValueInfo = { name: '', elemType: 0, dims: [] };
  for (const f of fields(buf, what)) {
    if (f.field === 1) info.name = str(f);
    else if (f.field === 2 && f.wire === 2) {
      for (const t of fields(f.bytes, `${what}.type`)) {
        if (t.field !== 1 || t.wire !== 2) continue;
        for (const tt of fields(t.bytes, `${what}.tensor_type`)) {
          if (tt.field === 1) info.elemType = int(tt);
          else if (tt.field === 2 && tt.wire === 2) {
            for (const d of fields(tt.bytes, `${what}.shape`)) {
              if (d.field !== 1 || d.wire !== 2) continue;
              let dim: number | string = '?';
              for (const dv of fields(d.bytes, `${what}.dim`)) {
                if (dv.field === 1) dim = int(dv);
                else if (dv.field === 2) dim = str(dv);
              }
              info.dims.push(dim);
            }
          }
        }
      }
    }
  }
  return info;
}

/** Parses an ONNX ModelProto. `file` names it in errors. */
export function parseOnnx(bytes: Uint8Array, file: string): OnnxModel {
  const model: OnnxModel = {
    opsets: new Map(),
    nodes: [],
    initializers: new Map(),
    inputs: [],
    outputs: [],
  };
  let graph: Uint8Array | null = null;
  for (const f of fields(bytes, file)) {
    if (f.field === 7 && f.wire === 2) graph = f.bytes;
    else if (f.field === 8 && f.wire === 2) {
      let domain = '';
      let version = 0;
      for (const o of fields(f.bytes, `${file}: opset_import`)) {
        if (o.field === 1) domain = str(o);
        else if (o.field === 2) version = int(o);
      }
      model.opsets.set(domain === 'ai.onnx' ? '' : domain, version);
    }
  }
  if (!graph) throw new OnnxFormatError(`${file}: not an ONNX model (no graph)`);
  for (const f of fields(graph, `${file}: graph`)) {
    if (f.wire !== 2) continue;
    if (f.field === 1) model.nodes.push(readNode(f.bytes, `${file}: node ${model.nodes.length}`));
    else if (f.field === 5) {
      const t = readTensor(f.bytes, `${file}: initializer`);
      model.initializers.set(t.name, t);
    } else if (f.field === 11) model.inputs.push(readValueInfo(f.bytes, `${file}: graph input`));
    else if (f.field === 12) model.outputs.push(readValueInfo(f.bytes, `${file}: graph output`));
  }
  return model;
}

export function elementSize(dataType: number): number {
  switch (dataType) {
    case DataType.FLOAT:
    case DataType.INT32:
      return 4;
    case DataType.FLOAT16:
      return 2;
    case DataType.INT64:
      return 8;
    case DataType.UINT8:
    case DataType.INT8:
      return 1;
    default:
      return 0;
  }
}

export function tensorByteLength(t: OnnxTensor): number {
  return t.data.kind === 'inline' ? t.data.bytes.length : t.data.length;
}

// ---------------------------------------------------------------------------------------------
// A tiny evaluator for shape and mask subgraphs (integers, booleans and a few floats), so a
// recogniser can check what such a subgraph computes instead of trusting its op names.

/** A small dense tensor; booleans are 0/1, int64 values are plain numbers. */
export interface SmallTensor {
  dims: number[];
  data: number[];
}

const MAX_SMALL = 1 << 16;

function smallFromTensor(t: OnnxTensor, what: string): SmallTensor {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.kind !== 'inline') throw new OnnxFormatError(`${what}: ${t.name} is not inline`);
  const b = t.data.bytes;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const size = elementSize(t.dataType) || (t.dataType === 9 ? 1 : 0);
  if (!size || b.length < count * size)
    throw new OnnxFormatError(
      `${what}: ${t.name} has unsupported type ${t.dataType} or too few bytes`,
    );
  const data: number[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * size;
    switch (t.dataType) {
      case DataType.FLOAT:
        data.push(view.getFloat32(at, true));
        break;
      case DataType.FLOAT16: {
        const h = view.getUint16(at, true);
        const e = (h >>> 10) & 0x1f;
        const m = h & 0x3ff;
        const sign = h & 0x8000 ? -1 : 1;
        data.push(
          e === 0
            ? sign * m * 2 ** -24
            : e === 31
              ? m
                ? NaN
                : sign * Infinity
              : sign * (1 + m / 1024) * 2 ** (e - 15),
        );
        break;
      }
      case DataType.INT64:
        data.push(Number(view.getBigInt64(at, true)));
        break;
      case DataType.INT32:
        data.push(view.getInt32(at, true));
        break;
      default:
        data.push(b[at]!);
    }
  }
  return { dims: [...t.dims], data };
}

const numel = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

function stridesOf(dims: number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

function broadcastDims(a: number[], b: number[], what: string): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1)
      throw new OnnxFormatError(`${what}: cannot broadcast [${a}] with [${b}]`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** The element of `t` that broadcasts to index `idx` of shape `dims`. */
function broadcastAt(t: SmallTensor, dims: number[], idx: number[]): number {
  const off = dims.length - t.dims.length;
  const st = stridesOf(t.dims);
  let at = 0;
  for (let i = 0; i < t.dims.length; i++) if (t.dims[i] !== 1) at += idx[off + i]! * st[i]!;
  return t.data[at]!;
}

function elementwise(ts: SmallTensor[], f: (...v: number[]) => number, what: string): SmallTensor {
  const dims = ts.map((t) => t.dims).reduce((a, b) => broadcastDims(a, b, what));
  const n = numel(dims);
  if (n > MAX_SMALL) throw new OnnxFormatError(`${what}: ${n} elements is not a small tensor`);
  const st = stridesOf(dims);
  const data: number[] = [];
  for (let i = 0; i < n; i++) {
    const idx = dims.map((_, d) => Math.floor(i / st[d]!) % dims[d]!);
    data.push(f(...ts.map((t) => broadcastAt(t, dims, idx))));
  }
  return { dims, data };
}

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/**
 * Evaluates `value` from `feeds` (graph inputs by name) through the nodes and inline
 * initializers of `model`. Only ops of shape and mask arithmetic are known; anything else, a
 * non-inline weight or a tensor over 64K elements throws OnnxFormatError naming the node.
 */
export function evaluateSmall(
  model: OnnxModel,
  value: string,
  feeds: Record<string, SmallTensor>,
): SmallTensor {
  const producers = new Map<string, OnnxNode>();
  for (const n of model.nodes) for (const o of n.outputs) if (o) producers.set(o, n);
  const memo = new Map<string, SmallTensor>(Object.entries(feeds));
  const get = (v: string, depth: number): SmallTensor => {
    const known = memo.get(v);
    if (known) return known;
    if (depth > 256) throw new OnnxFormatError(`${v}: subgraph is too deep`);
    const init = model.initializers.get(v);
    if (init) {
      const t = smallFromTensor(init, v);
      memo.set(v, t);
      return t;
    }
    const node = producers.get(v);
    if (!node) throw new OnnxFormatError(`${v}: no value fed and no node computes it`);
    const outs = run(node, (i) => (node.inputs[i] ? get(node.inputs[i]!, depth + 1) : null));
    node.outputs.forEach((o, i) => outs[i] && memo.set(o, outs[i]!));
    const t = memo.get(v);
    if (!t) throw new OnnxFormatError(`${node.name}: output ${v} not computed`);
    return t;
  };
  return get(value, 0);
}

function run(node: OnnxNode, input: (i: number) => SmallTensor | null): SmallTensor[] {
  const what = `${node.name} (${node.opType})`;
  const need = (i: number): SmallTensor => {
    const t = input(i);
    if (!t) throw new OnnxFormatError(`${what}: input ${i} is missing`);
    return t;
  };
  const attr = (k: string, fallback: number): number => {
    const v = node.attributes.get(k);
    return typeof v === 'number' ? v : fallback;
  };
  const ints = (t: SmallTensor) => t.data.map((x) => Math.trunc(x));
  const axesOf = (i: number, rank: number): number[] => {
    const a = input(i);
    const attrAxes = node.attributes.get('axes');
    const list = a ? ints(a) : Array.isArray(attrAxes) ? attrAxes : [];
    return list.map((x) => normAxis(x, rank));
  };
  const bin = (f: (a: number, b: number) => number) => [elementwise([need(0), need(1)], f, what)];
  if (node.domain !== '' && node.domain !== 'ai.onnx')
    throw new OnnxFormatError(`${what}: domain ${node.domain} is not evaluated`);
  switch (node.opType) {
    case 'Identity':
      return [need(0)];
    case 'Shape': {
      const d = need(0).dims;
      const start = normAxis(attr('start', 0), d.length);
      const end = node.attributes.has('end') ? normAxis(attr('end', d.length), d.length) : d.length;
      const data = d.slice(start, end);
      return [{ dims: [data.length], data }];
    }
    case 'Add':
      return bin((a, b) => a + b);
    case 'Sub':
      return bin((a, b) => a - b);
    case 'Mul':
      return bin((a, b) => a * b);
    case 'Less':
      return bin((a, b) => +(a < b));
    case 'LessOrEqual':
      return bin((a, b) => +(a <= b));
    case 'Greater':
      return bin((a, b) => +(a > b));
    case 'GreaterOrEqual':
      return bin((a, b) => +(a >= b));
    case 'Equal':
      return bin((a, b) => +(a === b));
    case 'And':
      return bin((a, b) => +(!!a && !!b));
    case 'Or':
      return bin((a, b) => +(!!a || !!b));
    case 'Not':
      return [{ dims: need(0).dims, data: need(0).data.map((x) => +!x) }];
    case 'Where':
      return [elementwise([need(0), need(1), need(2)], (c, a, b) => (c ? a : b), what)];
    case 'Cast': {
      const to = attr('to', 0);
      const x = need(0);
      const f =
        to === DataType.FLOAT || to === DataType.FLOAT16
          ? (v: number) => v
          : to === 9
            ? (v: number) => +(v !== 0)
            : (v: number) => Math.trunc(v);
      return [{ dims: x.dims, data: x.data.map(f) }];
    }
    case 'Range': {
      const [start, limit, delta] = [need(0).data[0]!, need(1).data[0]!, need(2).data[0]!];
      const n = Math.max(Math.ceil((limit - start) / delta), 0);
      if (!(n <= MAX_SMALL)) throw new OnnxFormatError(`${what}: range of ${n} is too long`);
      return [{ dims: [n], data: Array.from({ length: n }, (_, i) => start + i * delta) }];
    }
    case 'Unsqueeze': {
      const x = need(0);
      const rank =
        x.dims.length +
        (input(1)?.data.length ?? 0) +
        (Array.isArray(node.attributes.get('axes'))
          ? (node.attributes.get('axes') as number[]).length
          : 0);
      const axes = axesOf(1, rank).sort((a, b) => a - b);
      const dims = [...x.dims];
      for (const a of axes) dims.splice(a, 0, 1);
      return [{ dims, data: x.data }];
    }
    case 'Squeeze': {
      const x = need(0);
      const axes = axesOf(1, x.dims.length);
      const dims = x.dims.filter((d, i) => (axes.length ? !axes.includes(i) : d !== 1));
      return [{ dims, data: x.data }];
    }
    case 'Reshape': {
      const x = need(0);
      const shape = ints(need(1)).map((d, i) => (d === 0 ? x.dims[i]! : d));
      const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      const dims = shape.map((d) => (d === -1 ? x.data.length / known : d));
      if (numel(dims) !== x.data.length) throw new OnnxFormatError(`${what}: bad shape [${shape}]`);
      return [{ dims, data: x.data }];
    }
    case 'Concat': {
      const parts = node.inputs.map((_, i) => need(i));
      const rank = parts[0]!.dims.length;
      const axis = normAxis(attr('axis', 0), rank);
      const dims = [...parts[0]!.dims];
      dims[axis] = parts.reduce((a, p) => a + p.dims[axis]!, 0);
      const outer = numel(dims.slice(0, axis));
      const data: number[] = [];
      for (let o = 0; o < outer; o++)
        for (const p of parts) {
          const chunk = numel(p.dims.slice(axis));
          data.push(...p.data.slice(o * chunk, (o + 1) * chunk));
        }
      return [{ dims, data }];
    }
    case 'Gather': {
      const x = need(0);
      const idx = need(1);
      const axis = normAxis(attr('axis', 0), x.dims.length);
      const outer = numel(x.dims.slice(0, axis));
      const inner = numel(x.dims.slice(axis + 1));
      const n = x.dims[axis]!;
      const data: number[] = [];
      for (let o = 0; o < outer; o++)
        for (const raw of idx.data) {
          const j = raw < 0 ? raw + n : raw;
          if (j < 0 || j >= n) throw new OnnxFormatError(`${what}: index ${raw} out of range`);
          const at = (o * n + j) * inner;
          data.push(...x.data.slice(at, at + inner));
        }
      return [{ dims: [...x.dims.slice(0, axis), ...idx.dims, ...x.dims.slice(axis + 1)], data }];
    }
    case 'Slice': {
      const x = need(0);
      const rank = x.dims.length;
      const starts = ints(need(1));
      const ends = ints(need(2));
      const axes = input(3)
        ? ints(input(3)!).map((a) => normAxis(a, rank))
        : starts.map((_, i) => i);
      const steps = input(4) ? ints(input(4)!) : starts.map(() => 1);
      const ranges = x.dims.map((d) => Array.from({ length: d }, (_, i) => i));
      axes.forEach((a, k) => {
        const d = x.dims[a]!;
        const step = steps[k]!;
        const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
        let s = starts[k]!;
        let e = ends[k]!;
        s = s < 0 ? s + d : s;
        e = e < 0 ? e + d : e;
        const list: number[] = [];
        if (step > 0) for (let i = clamp(s, 0, d); i < clamp(e, 0, d); i += step) list.push(i);
        else for (let i = clamp(s, -1, d - 1); i > clamp(e, -1, d - 1); i += step) list.push(i);
        ranges[a] = list;
      });
      const dims = ranges.map((r) => r.length);
      const st = stridesOf(x.dims);
      const ost = stridesOf(dims);
      const data: number[] = [];
      for (let i = 0; i < numel(dims); i++) {
        let at = 0;
        for (let d = 0; d < rank; d++)
          at += ranges[d]![Math.floor(i / ost[d]!) % dims[d]!]! * st[d]!;
        data.push(x.data[at]!);
      }
      return [{ dims, data }];
    }
    case 'Expand': {
      const x = need(0);
      const shape = ints(need(1));
      return [
        elementwise([x, { dims: shape, data: new Array(numel(shape)).fill(0) }], (a) => a, what),
      ];
    }
    case 'Tile': {
      const x = need(0);
      const reps = ints(need(1));
      const dims = x.dims.map((d, i) => d * reps[i]!);
      const ost = stridesOf(dims);
      const st = stridesOf(x.dims);
      const data: number[] = [];
      for (let i = 0; i < numel(dims); i++) {
        let at = 0;
        for (let d = 0; d < dims.length; d++)
          at += ((Math.floor(i / ost[d]!) % dims[d]!) % x.dims[d]!) * st[d]!;
        data.push(x.data[at]!);
      }
      return [{ dims, data }];
    }
    case 'ConstantOfShape': {
      const shape = ints(need(0));
      const v = node.tensorAttributes?.get('value');
      const fill = v ? (smallFromTensor(v, what).data[0] ?? 0) : 0;
      if (numel(shape) > MAX_SMALL) throw new OnnxFormatError(`${what}: too large`);
      return [{ dims: shape, data: new Array(numel(shape)).fill(fill) }];
    }
    case 'Constant': {
      const v = node.tensorAttributes?.get('value');
      if (v) return [smallFromTensor(v, what)];
      const i = node.attributes.get('value_int') ?? node.attributes.get('value_float');
      if (typeof i === 'number') return [{ dims: [], data: [i] }];
      const list = node.attributes.get('value_ints') ?? node.attributes.get('value_floats');
      if (Array.isArray(list)) return [{ dims: [list.length], data: list }];
      throw new OnnxFormatError(`${what}: no value`);
    }
    default:
      throw new OnnxFormatError(`${what}: op is not evaluated`);
  }
}
