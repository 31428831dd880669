// Reads the parts of an ONNX ModelProto that tests and tools inspect: opsets, nodes with their
// attributes, initializer metadata (not their data) and the graph's typed inputs and outputs.
import { readFields, readPackedVarints, type ProtoField } from './proto.ts';

export interface ReadNode {
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, number | string | number[]>;
}

export interface ReadTensorInfo {
  name: string;
  dataType: number;
  dims: number[];
  external: Record<string, string> | null;
  rawLength: number;
}

export interface ReadValueInfo {
  name: string;
  elemType: number;
  dims: (number | string)[];
}

export interface ReadModel {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  nodes: ReadNode[];
  initializers: ReadTensorInfo[];
  inputs: ReadValueInfo[];
  outputs: ReadValueInfo[];
}

const utf8 = new TextDecoder();
const text = (f: ProtoField): string => (f.wire === 2 ? utf8.decode(f.value) : '');
const num = (f: ProtoField): number => (f.wire === 0 ? Number(BigInt.asIntN(64, f.value)) : NaN);

function readAttribute(bytes: Uint8Array): [string, number | string | number[]] {
  let name = '';
  let value: number | string | number[] = [];
  for (const f of readFields(bytes, 'AttributeProto')) {
    if (f.field === 1) name = text(f);
    else if (f.field === 2 && f.wire === 5)
      value = new DataView(f.value.buffer, f.value.byteOffset, 4).getFloat32(0, true);
    else if (f.field === 3) value = num(f);
    else if (f.field === 4) value = text(f);
    else if (f.field === 8)
      value = [
        ...(value as number[]),
        ...(f.wire === 2 ? readPackedVarints(f.value).map(Number) : [num(f)]),
      ];
  }
  return [name, value];
}

function readNode(bytes: Uint8Array): ReadNode {
  const node: ReadNode = {
    opType: '',
    domain: '',
    name: '',
    inputs: [],
    outputs: [],
    attributes: {},
  };
  for (const f of readFields(bytes, 'NodeProto')) {
    if (f.field === 1) node.inputs.push(text(f));
    else if (f.field === 2) node.outputs.push(text(f));
    else if (f.field === 3) node.name = text(f);
    else if (f.field === 4) node.opType = text(f);
    else if (f.field === 7) node.domain = text(f);
    else if (f.field === 5 && f.wire === 2) {
      const [k, v] = readAttribute(f.value);
      node.attributes[k] = v;
    }
  }
  return node;
}

function readTensor(bytes: Uint8Array): ReadTensorInfo {
  const t: ReadTensorInfo = { name: '', dataType: 0, dims: [], external: null, rawLength: 0 };
  for (const f of readFields(bytes, 'TensorProto')) {
    if (f.field === 1)
      t.dims.push(...(f.wire === 2 ? readPackedVarints(f.value).map(Number) : [num(f)]));
    else if (f.field === 2) t.dataType = num(f);
    else if (f.field === 8) t.name = text(f);
    else if (f.field === 9 && f.wire === 2) t.rawLength = f.value.length;
    else if (f.field === 13 && f.wire === 2) {
      let k = '';
      let v = '';
      for (const e of readFields(f.value, 'StringStringEntryProto')) {
        if (e.field === 1) k = text(e);
        if (e.field === 2) v = text(e);
      }
      t.external = { ...(t.external ?? {}), [k]: v };
    }
  }
  return t;
}

function readValueInfo(bytes: Uint8Array): ReadValueInfo {
  const v: ReadValueInfo = { name: '', elemType: 0, dims: [] };
  for (const f of readFields(bytes, 'ValueInfoProto')) {
    if (f.field === 1) v.name = text(f);
    if (f.field !== 2 || f.wire !== 2) continue;
    for (const tt of readFields(f.value, 'TypeProto')) {
      if (tt.field !== 1 || tt.wire !== 2) continue;
      for (const t of readFields(tt.value, 'TypeProto.Tensor')) {
        if (t.field === 1) v.elemType = num(t);
        if (t.field !== 2 || t.wire !== 2) continue;
        for (const d of readFields(t.value, 'TensorShapeProto')) {
          if (d.wire !== 2) continue;
          for (const dv of readFields(d.value, 'Dimension')) {
            if (dv.field === 1) v.dims.push(num(dv));
            if (dv.field === 2) v.dims.push(text(dv));
          }
        }
      }
    }
  }
  return v;
}

export function readModel(bytes: Uint8Array): ReadModel {
  const model: ReadModel = {
    irVersion: 0,
    opsets: [],
    nodes: [],
    initializers: [],
    inputs: [],
    outputs: [],
  };
  for (const f of readFields(bytes, 'ModelProto')) {
    if (f.field === 1) model.irVersion = num(f);
    else if (f.field === 8 && f.wire === 2) {
      let domain = '';
      let version = 0;
      for (const o of readFields(f.value, 'OperatorSetIdProto')) {
        if (o.field === 1) domain = text(o);
        if (o.field === 2) version = num(o);
      }
      model.opsets.push({ domain, version });
    } else if (f.field === 7 && f.wire === 2) {
      for (const g of readFields(f.value, 'GraphProto')) {
        if (g.wire !== 2) continue;
        if (g.field === 1) model.nodes.push(readNode(g.value));
        else if (g.field === 5) model.initializers.push(readTensor(g.value));
        else if (g.field === 11) model.inputs.push(readValueInfo(g.value));
        else if (g.field === 12) model.outputs.push(readValueInfo(g.value));
      }
    }
  }
  return model;
}
