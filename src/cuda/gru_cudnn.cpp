// CudnnGru (gru_cudnn.hpp): descriptors, the canonical <-> weight-space index, forward and backward.
// Choices that cannot be checked on a machine without a GPU are listed in docs/cuda_training.md
// ("where to look first"); each is marked here with "cuDNN semantics:".
#include "cuda/gru_cudnn.hpp"

#include <algorithm>
#include <climits>
#include <string>
#include <utility>

#include "rl2/core/check.hpp"
#include "step_ops.cuh"

namespace rl2 {
namespace {

// RAII holders for the descriptors a temp-space query needs.
TensorDescOwner make_tensor_desc() {
  return make_dnn_owned<TensorDescOwner>([](cudnnTensorDescriptor_t* d) { return cudnnCreateTensorDescriptor(d); });
}

void check_sizes(int32_t input, int32_t hidden, int64_t steps, int64_t batch) {
  RL2_CHECK(input >= 1 && hidden >= 1, "CudnnGru: input and hidden sizes must be positive");
  RL2_CHECK(steps >= 1 && steps <= INT_MAX && batch >= 1 && batch <= INT_MAX,
            "CudnnGru: steps and batch must be in [1, INT_MAX] (cuDNN's sequence descriptors are int)");
}

// The RNN descriptor: single-layer unidirectional GRU, two biases, linear input, FP32 without tensor cores.
// cuDNN semantics: CUDNN_FMA_MATH (not CUDNN_DEFAULT_MATH) because DEFAULT may pick TF32 tensor-core
// kernels for FP32 data on sm_80+; PyTorch's v8 path does the same when TF32 is off. projSize = hidden
// (no projection); auxFlags = PADDED_IO_DISABLED, which the packed layout requires.
void make_rnn(cudnnHandle_t handle, int32_t input, int32_t hidden, CudnnGru::Descriptors& d) {
  d.dropout =
      make_dnn_owned<DropoutDescOwner>([](cudnnDropoutDescriptor_t* p) { return cudnnCreateDropoutDescriptor(p); });
  // No dropout (one layer): no states, as PyTorch's set_no_dropout.
  RL2_CUDNN_CHECK(cudnnSetDropoutDescriptor(d.dropout.get(), handle, 0.0f, nullptr, 0, 0));
  d.rnn = make_dnn_owned<RnnDescOwner>([](cudnnRNNDescriptor_t* p) { return cudnnCreateRNNDescriptor(p); });
  RL2_CUDNN_CHECK(cudnnSetRNNDescriptor_v8(d.rnn.get(), CUDNN_RNN_ALGO_STANDARD, CUDNN_GRU, CUDNN_RNN_DOUBLE_BIAS,
                                           CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT,
                                           CUDNN_FMA_MATH, input, hidden, hidden, 1, d.dropout.get(),
                                           CUDNN_RNN_PADDED_IO_DISABLED));
  const auto data_desc = [] {
    return make_dnn_owned<RnnDataDescOwner>(
        [](cudnnRNNDataDescriptor_t* p) { return cudnnCreateRNNDataDescriptor(p); });
  };
  d.x = data_desc();
  d.y = data_desc();
  d.h = make_tensor_desc();
}

// x [T, B, I] and y [T, B, H], time-major packed with every length T (= [T][B][vector], as unpacked would be);
// h [1, B, H].
void set_data(int32_t input, int32_t hidden, int64_t steps, int64_t batch, const CudnnGru::Descriptors& d) {
  cudnnRNNDataDescriptor_t x = d.x.get(), y = d.y.get();
  cudnnTensorDescriptor_t h = d.h.get();
  const std::vector<int> lengths(static_cast<size_t>(batch), static_cast<int>(steps));
  RL2_CUDNN_CHECK(cudnnSetRNNDataDescriptor(x, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED,
                                            static_cast<int>(steps), static_cast<int>(batch), input, lengths.data(),
                                            nullptr));
  RL2_CUDNN_CHECK(cudnnSetRNNDataDescriptor(y, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED,
                                            static_cast<int>(steps), static_cast<int>(batch), hidden, lengths.data(),
                                            nullptr));
  const int dims[3] = {1, static_cast<int>(batch), hidden};
  const int strides[3] = {static_cast<int>(batch) * hidden, hidden, 1};
  RL2_CUDNN_CHECK(cudnnSetTensorNdDescriptor(h, CUDNN_DATA_FLOAT, 3, dims, strides));
}

std::string dims_str(const int32_t* d) {
  return "[" + std::to_string(d[0]) + ", " + std::to_string(d[1]) + ", " + std::to_string(d[2]) + "]";
}

}  // namespace

CudnnTempBytes CudnnGru::temp_bytes(cudnnHandle_t handle, int32_t input, int32_t hidden, int64_t steps, int64_t batch) {
  check_sizes(input, hidden, steps, batch);
  Descriptors d;
  make_rnn(handle, input, hidden, d);
  set_data(input, hidden, steps, batch, d);
  CudnnTempBytes t;
  RL2_CUDNN_CHECK(
      cudnnGetRNNTempSpaceSizes(handle, d.rnn.get(), CUDNN_FWD_MODE_TRAINING, d.x.get(), &t.work, &t.reserve));
  return t;
}

CudnnGru::CudnnGru(cudnnHandle_t handle, cudaStream_t stream, int32_t input, int32_t hidden, int64_t steps,
                   int64_t max_batch)
    : handle_(handle), stream_(stream), I_(input), H_(hidden), T_(steps), max_batch_(max_batch) {
  check_sizes(input, hidden, steps, max_batch);
  Descriptors& d = d_;
  make_rnn(handle, input, hidden, d);
  RL2_CUDNN_CHECK(cudnnGetRNNWeightSpaceSize(handle, d.rnn.get(), &ws_bytes_));
  RL2_CHECK(ws_bytes_ % sizeof(float) == 0 && ws_bytes_ > 0, "cuDNN reported a weight space that is not whole floats");
  dws_ = DeviceBuffer<float>(ws_bytes_ / sizeof(float));

  // cuDNN semantics: linLayerID 0, 1, 2 = the input GEMM's matrices (and the b_W biases) of the reset (r),
  // update (z, cuDNN's "input" gate i) and new (n, cuDNN's h') gates; 3, 4, 5 = the recurrent GEMM's
  // (and the b_R biases) of the same gates. Matrices are reported as {1, rows, cols} with rows = H output
  // units and cols = I (input GEMM) or H (recurrent), biases as {1, H, 1}. The addresses only are computed
  // (nothing is read), relative to the buffer passed, here the gradient buffer of the same size.
  const int64_t H = hidden, I = input;
  const int64_t w_ih = 0, w_hh = 3 * H * I, b_ih = w_hh + 3 * H * H, b_hh = b_ih + 3 * H;  // gru_layout's offsets
  index_host_.assign(static_cast<size_t>(b_hh + 3 * H), -1);
  const TensorDescOwner m_owner = make_tensor_desc(), b_owner = make_tensor_desc();
  cudnnTensorDescriptor_t m_desc = m_owner.get(), b_desc = b_owner.get();
  {
    for (int32_t lin = 0; lin < 6; ++lin) {
      void* m_addr = nullptr;
      void* b_addr = nullptr;
      RL2_CUDNN_CHECK(cudnnGetRNNWeightParams(handle, d.rnn.get(), 0, ws_bytes_, dws_.data(), lin, m_desc, &m_addr,
                                              b_desc, &b_addr));
      CudnnLinLayer L;
      L.id = lin;
      cudnnDataType_t dt = CUDNN_DATA_FLOAT;
      int nb = 0;
      RL2_CUDNN_CHECK(cudnnGetTensorNdDescriptor(m_desc, 3, &dt, &nb, L.m_dims, L.m_strides));
      RL2_CHECK(nb == 3 && dt == CUDNN_DATA_FLOAT && m_addr != nullptr,
                "cuDNN reported no 3-d float matrix for GRU linLayerID " + std::to_string(lin));
      RL2_CUDNN_CHECK(cudnnGetTensorNdDescriptor(b_desc, 3, &dt, &nb, L.b_dims, L.b_strides));
      RL2_CHECK(nb == 3 && dt == CUDNN_DATA_FLOAT && b_addr != nullptr,
                "cuDNN reported no 3-d float bias for GRU linLayerID " + std::to_string(lin));
      const auto offset = [&](void* p) {
        const std::ptrdiff_t bytes = static_cast<char*>(p) - reinterpret_cast<char*>(dws_.data());
        RL2_CHECK(bytes >= 0 && bytes % static_cast<std::ptrdiff_t>(sizeof(float)) == 0 &&
                      static_cast<size_t>(bytes) < ws_bytes_,
                  "cuDNN reported an address outside the weight space for linLayerID " + std::to_string(lin));
        return static_cast<int64_t>(bytes / static_cast<std::ptrdiff_t>(sizeof(float)));
      };
      L.m_offset = offset(m_addr);
      L.b_offset = offset(b_addr);
      const bool recurrent = lin >= 3;
      const int64_t gate = lin % 3, cols = recurrent ? H : I;
      RL2_CHECK(L.m_dims[0] == 1 && L.m_dims[1] == H && L.m_dims[2] == cols,
                "cuDNN reported GRU linLayerID " + std::to_string(lin) + " matrix dims " + dims_str(L.m_dims) +
                    "; this mapping expects [1, " + std::to_string(H) + ", " + std::to_string(cols) + "]");
      RL2_CHECK(L.b_dims[0] == 1 && L.b_dims[1] == H && L.b_dims[2] == 1,
                "cuDNN reported GRU linLayerID " + std::to_string(lin) + " bias dims " + dims_str(L.b_dims) +
                    "; this mapping expects [1, " + std::to_string(H) + ", 1]");
      const int64_t m_base = (recurrent ? w_hh : w_ih) + gate * H * cols;
      for (int64_t j = 0; j < H; ++j)
        for (int64_t c = 0; c < cols; ++c)
          index_host_[static_cast<size_t>(m_base + j * cols + c)] =
              L.m_offset + j * L.m_strides[1] + c * L.m_strides[2];
      const int64_t b_base = (recurrent ? b_hh : b_ih) + gate * H;
      for (int64_t j = 0; j < H; ++j) index_host_[static_cast<size_t>(b_base + j)] = L.b_offset + j * L.b_strides[1];
      lin_layers_.push_back(L);
    }
  }
  // Every canonical element has its own place inside the weight space: the map is injective.
  std::vector<int64_t> sorted = index_host_;
  std::sort(sorted.begin(), sorted.end());
  RL2_CHECK(sorted.front() >= 0 && sorted.back() < weight_space_floats(),
            "the canonical -> cuDNN weight-space map leaves an element unmapped or out of range");
  RL2_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
            "the canonical -> cuDNN weight-space map sends two canonical elements to one place");
  allocate();
}

void CudnnGru::allocate() {
  const int64_t H = H_, I = I_;
  const size_t tb = static_cast<size_t>(T_ * max_batch_);
  index_ = DeviceBuffer<int64_t>(index_host_.size());
  RL2_CUDA_CHECK(cudaMemcpyAsync(index_.data(), index_host_.data(), index_.bytes(), cudaMemcpyHostToDevice, stream_));
  y_ = DeviceBuffer<float>(tb * static_cast<size_t>(H));
  dy_ = DeviceBuffer<float>(tb * static_cast<size_t>(H));
  dx_ = DeviceBuffer<float>(tb * static_cast<size_t>(I));
  h_zero_ = DeviceBuffer<float>(static_cast<size_t>(max_batch_ * H));
  h_scratch_ = DeviceBuffer<float>(static_cast<size_t>(max_batch_ * H));
  RL2_CUDA_CHECK(cudaMemsetAsync(h_zero_.data(), 0, h_zero_.bytes(), stream_));
  RL2_CUDA_CHECK(cudaMemsetAsync(dws_.data(), 0, dws_.bytes(), stream_));
  const std::vector<int32_t> lengths(static_cast<size_t>(max_batch_), static_cast<int32_t>(T_));
  seq_lengths_ = DeviceBuffer<int32_t>(lengths.size());
  RL2_CUDA_CHECK(
      cudaMemcpyAsync(seq_lengths_.data(), lengths.data(), seq_lengths_.bytes(), cudaMemcpyHostToDevice, stream_));
  set_batch(max_batch_);
  RL2_CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(handle_, d_.rnn.get(), CUDNN_FWD_MODE_TRAINING, d_.x.get(), &temp_.work,
                                            &temp_.reserve));
  work_ = DeviceBuffer<unsigned char>(temp_.work);
  reserve_ = DeviceBuffer<unsigned char>(temp_.reserve);
  RL2_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host vectors copied above may go
}

CudnnGru::~CudnnGru() {
  cudaStreamSynchronize(stream_);  // no buffer is freed under queued work (the descriptors go with d_)
}

void CudnnGru::set_batch(int64_t batch) {
  RL2_CHECK(batch >= 1 && batch <= max_batch_, "CudnnGru: batch " + std::to_string(batch) + " outside [1, " +
                                                   std::to_string(max_batch_) + "]");
  if (batch == batch_) return;
  batch_ = -1;  // until the descriptors describe `batch`
  set_data(I_, H_, T_, batch, d_);
  if (batch != max_batch_) {
    // The temp space was sized for max_batch, but cuDNN may choose another algorithm at a smaller batch (PPO's
    // and the baseline's minibatches) that wants more: grow the buffers then. Rare, so the stream's work on the
    // old buffers simply finishes first. The reserve space only carries a forward to its own backward, which
    // always share one batch.
    CudnnTempBytes t;
    RL2_CUDNN_CHECK(
        cudnnGetRNNTempSpaceSizes(handle_, d_.rnn.get(), CUDNN_FWD_MODE_TRAINING, d_.x.get(), &t.work, &t.reserve));
    if (t.work > temp_.work || t.reserve > temp_.reserve) {
      RL2_CUDA_CHECK(cudaStreamSynchronize(stream_));
      if (t.work > temp_.work) work_ = DeviceBuffer<unsigned char>(temp_.work = t.work);
      if (t.reserve > temp_.reserve) reserve_ = DeviceBuffer<unsigned char>(temp_.reserve = t.reserve);
    }
  }
  batch_ = batch;
}

void CudnnGru::pack(const float* canonical, float* weight_space) const {
  launch(ops::Scatter{canonical_floats(), canonical, index_.data(), weight_space}, stream_);
}

void CudnnGru::unpack(const float* weight_space, float* canonical) const {
  launch(ops::Gather{canonical_floats(), weight_space, index_.data(), canonical}, stream_);
}

// cuDNN semantics: hx = an explicit zero buffer (NULL would also mean h_0 = 0), hy and dhx go to a
// scratch buffer, dhy = zeros (no loss on the final hidden state); cDesc gets the h descriptor and every
// c pointer is NULL (a GRU has no cell state). devSeqLengths is a device array of B copies of T.
void CudnnGru::forward(const float* weight_space, const float* x, int64_t batch) {
  set_batch(batch);
  RL2_CUDNN_CHECK(cudnnRNNForward(handle_, d_.rnn.get(), CUDNN_FWD_MODE_TRAINING, seq_lengths_.data(), d_.x.get(), x,
                                  d_.y.get(), y_.data(), d_.h.get(), h_zero_.data(), h_scratch_.data(), d_.h.get(),
                                  nullptr, nullptr, ws_bytes_, weight_space, work_.bytes(), work_.data(),
                                  reserve_.bytes(), reserve_.data()));
}

void CudnnGru::backward(const float* weight_space, const float* x, int64_t batch) {
  set_batch(batch);
  // BackwardData first: it consumes (and updates) the reserve space that BackwardWeights then reads. Its dx
  // (d/dx with dhy = 0) is the maze encoder's output gradient.
  RL2_CUDNN_CHECK(cudnnRNNBackwardData_v8(
      handle_, d_.rnn.get(), seq_lengths_.data(), d_.y.get(), y_.data(), dy_.data(), d_.x.get(), dx_.data(), d_.h.get(),
      h_zero_.data(), h_zero_.data(), h_scratch_.data(), d_.h.get(), nullptr, nullptr, nullptr, ws_bytes_, weight_space,
      work_.bytes(), work_.data(), reserve_.bytes(), reserve_.data()));
  // cuDNN semantics: BackwardWeights ADDs into dweightSpace (CUDNN_WGRAD_MODE_ADD, the mode cuDNN and
  // PyTorch use), so the gradient is zeroed first.
  RL2_CUDA_CHECK(cudaMemsetAsync(dws_.data(), 0, dws_.bytes(), stream_));
  RL2_CUDNN_CHECK(cudnnRNNBackwardWeights_v8(
      handle_, d_.rnn.get(), CUDNN_WGRAD_MODE_ADD, seq_lengths_.data(), d_.x.get(), x, d_.h.get(), h_zero_.data(),
      d_.y.get(), y_.data(), ws_bytes_, dws_.data(), work_.bytes(), work_.data(), reserve_.bytes(), reserve_.data()));
}

}  // namespace rl2
