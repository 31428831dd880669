export { readMlruns } from './reader.ts';
export {
  writeExperimentFolder,
  experimentMetaYaml,
  runMetaYaml,
  metricFileText,
  datasetId,
  datasetMetaYaml,
  inputMetaYaml,
  type RunForWriting,
  type ExperimentFiles,
} from './writer.ts';
export { pyFloatRepr, parsePyFloat, dumpFlatYaml } from './pyformat.ts';
export { md5Hex } from './md5.ts';
export {
  MlrunsParseError,
  type MlrunsExperiment,
  type MlrunsRun,
  type MlrunsTree,
} from './types.ts';
