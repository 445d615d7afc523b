// The tiny Llama configuration of the model-engine tests (issue 3's proof config): 2 layers,
// hidden 32, 4 heads, 2 KV heads, head_dim 8, FFN 48, vocab 97.
import { LlamaConfig } from '../../src/model/config';

export function tinyConfig(tie: boolean): LlamaConfig {
  return {
    architecture: 'LlamaForCausalLM',
    modelType: 'llama',
    hiddenSize: 32,
    intermediateSize: 48,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 8,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: null,
    vocabSize: 97,
    tieWordEmbeddings: tie,
    maxPositionEmbeddings: 64,
    bosTokenId: 1,
    eosTokenId: 2,
    hiddenAct: 'silu',
    attentionBias: false,
    mlpBias: false,
  };
}
