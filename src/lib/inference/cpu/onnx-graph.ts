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

function readAttribute(buf: Uint8Array, what: string): [string, AttributeValue] {
  let name = '';
  let value: AttributeValue = [];
  const list: number[] = [];
  for (const f of fields(buf, what)) {
    if (f.field === 1) name = str(f);
    else if (f.field === 2 && f.wire === 5)
      value = new DataView(f.bytes.buffer, f.bytes.byteOffset, 4).getFloat32(0, true);
    else if (f.field === 3 && f.wire === 0) value = int(f);
    else if (f.field === 4 && f.wire === 2) value = str(f);
    else if (f.field === 8) list.push(...ints(f, `${what}.ints`));
  }
  if (list.length) value = list;
  return [name, value];
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
      const [k, v] = readAttribute(f.bytes, `${what} attribute`);
      node.attributes.set(k, v);
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
