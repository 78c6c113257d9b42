export { NimbusServiceController, type NimbusControllerOptions, type NimbusServiceStatus } from './controller.js';
export { nimbusConfigSchema, type NimbusConfig, type NimbusConfigInput } from '../../src/ports.js';
export { ec2Probe, type Ec2ProbeOptions } from './ec2-probe.js';
export { signV2, signedV2Request, stringToSignV2, signatureV2, type Ec2Credentials, type V2SignatureMethod } from './ec2-sign.js';
export { nimbusStateLayout, type NimbusStateItem, type NimbusStateKind, type NimbusSyncRule } from './state-layout.js';
