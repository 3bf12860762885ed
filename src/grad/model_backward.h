// Backward passes through the shared blocks of models/, driven by the tapes
// their forwards record (VitLayerTape, VitTape, LlamaTape). Parameter
// gradients go to a GradSink (nullable: input gradients only, e.g. for
// gradient attribution on a stored-dtype checkpoint).
#pragma once
#include <cstdint>
#include <functional>

#include "grad/params.h"
#include "models/vit.h"
#include "models/llama.h"

namespace mmn {

// dx [rows, D]: on entry ∂L/∂(layer output), on return ∂L/∂(layer input).
void vit_layer_backward(const VitLayer& L, const VitLayerTape& t, int64_t rows, float* dx, GradSink* g);

// Backward from hidden state `state` of VitTower::forward (the state the taped
// forward returned): dstate [1 + P, Dv] = ∂L/∂state. Parameter gradients only
// (the pixels get none).
void vit_backward(const VitTower& tower, const VitTape& tape, int state, const float* dstate, GradSink* g);

// dx [rows, D]: on entry ∂L/∂(last layer's output), on return ∂L/∂(input embeddings).
// on_mlp_grad (optional) sees each layer's ∂L/∂(down_proj input) [rows, I].
void llama_backward(const LlamaDecoder& dec, const LlamaTape& tape, float* dx, GradSink* g,
                    const std::function<void(int layer, const float* dpost)>& on_mlp_grad = {});

}  // namespace mmn
