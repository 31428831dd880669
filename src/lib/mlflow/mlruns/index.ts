export { readMlruns, metaExtras, parseLoggedModelMeta, type LoggedModelMeta } from './reader.ts';
export {
  writeExperimentFolder,
  EXPERIMENT_META_KEYS,
  RUN_META_KEYS,
  type MetaExtras,
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
export {
  readMlrunsRegistry,
  writeMlrunsRegistry,
  registeredModelMetaYaml,
  registeredModelMetaFile,
  modelVersionMetaFile,
  modelVersionMetaYaml,
  parseRegisteredModelMeta,
  parseModelVersionMeta,
  REGISTERED_MODEL_META_KEYS,
  MODEL_VERSION_META_KEYS,
  type MlrunsRegistry,
  type MlrunsRegisteredModel,
  type MlrunsModelVersion,
  type MlrunsStage,
  type RegistryMetaExtras,
} from './registry.ts';
