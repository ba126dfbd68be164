// CudnnEncoder (encoder_cudnn.hpp): the maze encoder's forward and backward on cuDNN's legacy convolution
// API and cuBLAS, the twin of encoder_cpu.cpp; equations in encoder.hpp and encoder_ref.cpp.
// Parallel layout: the convolutions run over chunks of at most chunk_rows() rows (one cuDNN call per
// chunk and layer), the FC layers are single SGEMMs over all M rows, bias, ReLU and masks are step ops
// (include/rl2/train/step_ops.hpp) and bias sums two-stage reductions (kernels/step_ops.cu). Choices that
// only a GPU run can confirm are marked "cuDNN semantics:" here and listed in docs/cuda_training.md ("cuDNN encoder").
//
// Row-major matrices through column-major cuBLAS: a row-major A [r, c] with row stride ld is the
// column-major matrix Aᵀ [c, r] with leading dimension ld, so the row-major product C = A B is computed
// as the column-major Cᵀ = Bᵀ Aᵀ (operands swapped, no transposes added).
#include "cuda/encoder_cudnn.hpp"

#include <algorithm>
#include <climits>
#include <string>
#include <utility>

#include "cudnn_check.hpp"
#include "step_ops.cuh"
#include "rl2/core/check.hpp"

namespace rl2 {
namespace {

// out[c] = float(double(out[c]) + sum_{r, q} double(in[r ld + c inner + q])): a bias gradient, accumulated;
// the two-stage reduction of step_ops.cuh with one group per channel. partials: [channels, kReduceBlocks].
void channel_sums(int64_t rows, int32_t channels, int64_t inner, int64_t ld, const float* in, double* partials,
                  float* out, cudaStream_t stream) {
  ReduceArgs a{ReduceOp::kSumF32, rows * inner};
  a.xf = in;
  a.groups = channels;
  a.stride = ld;
  a.inner = inner;
  a.partials = partials;
  a.out_f = out;
  a.accumulate = true;
  launch_reduce(a, stream);
}

// Rows per cuDNN call at most. Far below cuDNN's 2^31-element tensor limit at the maze size (3605 floats
// a row: 118 M elements); it also keeps every grid dimension cuDNN derives from N small.
constexpr int64_t kMaxChunkRows = 32768;
// cuDNN's legacy tensors have int dimensions and strides, and at most 2^31 - 1 elements with padding.
constexpr int64_t kMaxTensorElements = int64_t{INT_MAX};
// Workspace allowance of bytes(): implicit GEMMs and ALGO_1 are expected to need little or no workspace
// (not measured: no GPU run yet); the constructor allocates whatever cuDNN asks for.
constexpr double kWorkspaceAllowance = 64.0 * 1024 * 1024;

struct Sizes {
  int64_t C, H, W, F, P1, P2, f1, flat, img, in, out, Ni, Ne, E;
  explicit Sizes(const EncoderShape& s)
      : C(s.channels), H(s.height), W(s.width), F(s.filters), P1(int64_t{s.h1()} * s.w1()),
        P2(int64_t{s.h2()} * s.w2()), f1(F * P1), flat(s.flat()), img(s.image_size()), in(s.in()), out(s.out()),
        Ni(s.image_fc), Ne(s.extra_fc), E(s.extra_in) {}
};

// Rows per cuDNN call: kMaxChunkRows, or fewer so that no chunk's tensor (x with its row stride in(),
// f1, f2) reaches kMaxTensorElements. 0 when not even one row fits.
int64_t chunk_rows(const EncoderShape& s) {
  const Sizes d(s);
  const int64_t per_row = std::max({d.in, d.f1, d.flat});
  return std::min(kMaxChunkRows, kMaxTensorElements / per_row);
}

int to_int(int64_t v) { return static_cast<int>(v); }  // callers keep every size below INT_MAX

// C [m, n] (column-major, ldc) = alpha op(A) op(B) + beta C, FP32 (the handle's math mode, left as the
// caller set it: the CUDA backend sets CUBLAS_DEFAULT_MATH, no TF32).
void sgemm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const float alpha = 1.0f;
  RL2_CUBLAS_CHECK(cublasSgemm(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, to_int(m), to_int(n),
                               to_int(k), &alpha, A, to_int(lda), B, to_int(ldb), &beta, C, to_int(ldc)));
}

// Binds the caller's handles to the encoder's stream, and cuBLAS to host scalars, for one call; puts back
// what they had (the handles are shared with the GRU and the head, which set their own). A stream is
// only set when it differs: cublasSetStream also resets cuBLAS's workspace to its default pool.
class HandleScope {
 public:
  HandleScope(cudnnHandle_t dnn, cublasHandle_t blas, cudaStream_t stream) : dnn_(dnn), blas_(blas), stream_(stream) {
    RL2_CUDNN_CHECK(cudnnGetStream(dnn_, &dnn_old_));
    RL2_CUBLAS_CHECK(cublasGetStream(blas_, &blas_old_));
    RL2_CUBLAS_CHECK(cublasGetPointerMode(blas_, &mode_old_));
    if (dnn_old_ != stream_) RL2_CUDNN_CHECK(cudnnSetStream(dnn_, stream_));
    if (blas_old_ != stream_) RL2_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    if (mode_old_ != CUBLAS_POINTER_MODE_HOST) RL2_CUBLAS_CHECK(cublasSetPointerMode(blas_, CUBLAS_POINTER_MODE_HOST));
  }
  ~HandleScope() {  // best effort: a destructor must not throw
    if (mode_old_ != CUBLAS_POINTER_MODE_HOST) cublasSetPointerMode(blas_, mode_old_);
    if (blas_old_ != stream_) cublasSetStream(blas_, blas_old_);
    if (dnn_old_ != stream_) cudnnSetStream(dnn_, dnn_old_);
  }
  HandleScope(const HandleScope&) = delete;
  HandleScope& operator=(const HandleScope&) = delete;

 private:
  cudnnHandle_t dnn_;
  cublasHandle_t blas_;
  cudaStream_t stream_, dnn_old_ = nullptr, blas_old_ = nullptr;
  cublasPointerMode_t mode_old_ = CUBLAS_POINTER_MODE_HOST;
};

// The three activation descriptors for n rows. image: conv1's input read in place from the rows of x
// (dims [n, C, H, W], strides {in, H·W, W, 1}: each image is CHW-packed, rows in() floats apart), or
// packed when `packed`. f1 [n, F, H1, W1] and f2 [n, F, H2, W2] fully packed.
void describe(const EncoderShape& s, int64_t n, bool packed, cudnnTensorDescriptor_t image, cudnnTensorDescriptor_t f1,
              cudnnTensorDescriptor_t f2) {
  const Sizes d(s);
  RL2_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(image, CUDNN_DATA_FLOAT, to_int(n), s.channels, s.height, s.width,
                                               to_int(packed ? d.img : d.in), s.height * s.width, s.width, 1));
  RL2_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(f1, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(n), s.filters, s.h1(), s.w1()));
  RL2_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(f2, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(n), s.filters, s.h2(), s.w2()));
}

// cuDNN semantics: a workspace query answers CUDNN_STATUS_NOT_SUPPORTED (or one of its 3xxx sub-codes)
// when the algorithm does not support the descriptors; that is how an algorithm is ruled out. Any other
// failure is an error of ours and throws.
bool supported(cudnnStatus_t st) {
  if (CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_NOT_SUPPORTED) return false;
  RL2_CUDNN_CHECK(st);
  return true;
}

// The first algorithm of `candidates` whose workspace query succeeds (`need` gets its bytes); false if none.
template <class Algo, size_t N, class Query>
bool choose(const Algo (&candidates)[N], Query&& query, Algo* chosen) {
  for (const Algo a : candidates) {
    size_t need = 0;
    if (supported(query(a, &need))) {
      *chosen = a;
      return true;
    }
  }
  return false;
}

// Deterministic algorithms only, in order of preference. Forward: every forward algorithm is
// deterministic; the implicit GEMMs read strided inputs and need little or no workspace, GEMM (explicit
// im2col) is the last resort. Backward filter and data: ALGO_0 and ALGO_3 use atomics (non-deterministic)
// and are never used; ALGO_1 is a deterministic implicit GEMM. The FFT and Winograd variants (also
// deterministic) need stride 1 or 3×3/5×5 kernels, so at the maze's stride 2 only ALGO_1 applies; they are
// listed as fallbacks for other shapes.
constexpr cudnnConvolutionFwdAlgo_t kFwdAlgos[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_GEMM};
constexpr cudnnConvolutionBwdFilterAlgo_t kBwdFilterAlgos[] = {
    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING,
    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED};
constexpr cudnnConvolutionBwdDataAlgo_t kBwdDataAlgos[] = {
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT,
    CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED};

std::string shape_str(const EncoderShape& s) {
  return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width) + ", " +
         std::to_string(s.filters) + " filters " + std::to_string(s.kernel) + "x" + std::to_string(s.kernel) +
         " stride " + std::to_string(s.stride);
}

}  // namespace

double CudnnEncoder::bytes(const EncoderShape& shape, int64_t max_rows) {
  encoder_layout(shape);  // checks the shape
  RL2_CHECK(max_rows >= 0, "CudnnEncoder::bytes: negative rows");
  const Sizes d(shape);
  const double rows = static_cast<double>(max_rows);
  const double chunk = static_cast<double>(std::min(max_rows, std::max<int64_t>(chunk_rows(shape), 1)));
  // f1, f2, y, dz, d2 for every row; d1 for one chunk; the bias-sum partials; the workspace allowance.
  const double floats = rows * static_cast<double>(d.f1 + 2 * d.flat + 2 * d.out) + chunk * static_cast<double>(d.f1);
  const double partials = static_cast<double>(std::max({d.F, d.Ni, d.Ne}) * kReduceBlocks);
  return floats * sizeof(float) + partials * sizeof(double) + kWorkspaceAllowance;
}

CudnnEncoder::CudnnEncoder(cudnnHandle_t dnn, cublasHandle_t blas, cudaStream_t stream, const EncoderShape& shape,
                           int64_t max_rows)
    : dnn_(dnn), blas_(blas), stream_(stream), shape_(shape), max_rows_(max_rows) {
  encoder_layout(shape);  // checks the shape
  const Sizes d(shape);
  RL2_CHECK(max_rows >= 1 && max_rows <= INT_MAX,
            "CudnnEncoder: max_rows must be in [1, INT_MAX] (cuBLAS sizes are int)");
  chunk_rows_ = chunk_rows(shape);
  RL2_CHECK(chunk_rows_ >= 1, "CudnnEncoder: one step's input is larger than a cuDNN tensor may be");
  RL2_CHECK(std::max({d.F, d.Ni, d.Ne}) <= 65535, "CudnnEncoder: more filters or FC units than the bias sums take");
  const int64_t chunk0 = std::min(max_rows, chunk_rows_);
  const auto tensor = [] {
    return make_dnn_owned<TensorDescOwner>([](cudnnTensorDescriptor_t* p) { return cudnnCreateTensorDescriptor(p); });
  };
  const auto filter = [] {
    return make_dnn_owned<FilterDescOwner>([](cudnnFilterDescriptor_t* p) { return cudnnCreateFilterDescriptor(p); });
  };
  owners_.image = tensor();
  owners_.f1 = tensor();
  owners_.f2 = tensor();
  owners_.w1 = filter();
  owners_.w2 = filter();
  owners_.conv = make_dnn_owned<ConvDescOwner>(
      [](cudnnConvolutionDescriptor_t* p) { return cudnnCreateConvolutionDescriptor(p); });
  image_desc_ = owners_.image.get();
  f1_desc_ = owners_.f1.get();
  f2_desc_ = owners_.f2.get();
  w1_desc_ = owners_.w1.get();
  w2_desc_ = owners_.w2.get();
  conv_desc_ = owners_.conv.get();
  // torch's Conv2d weight [out, in, kH, kW] is cuDNN's NCHW (KCRS) filter layout.
  RL2_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w1_desc_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, shape.filters,
                                             shape.channels, shape.kernel, shape.kernel));
  RL2_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w2_desc_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, shape.filters,
                                             shape.filters, shape.kernel, shape.kernel));
  // cuDNN semantics: CUDNN_CROSS_CORRELATION is torch's (and encoder_ref's) convolution, no kernel flip.
  // CUDNN_FMA_MATH keeps FP32 on the FMA units: CUDNN_DEFAULT_MATH may pick TF32 tensor-core kernels
  // for FP32 data on sm_80+, which would break the 1e-5 parity with the CPU (as in gru_cudnn.cpp).
  RL2_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv_desc_, 0, 0, shape.stride, shape.stride, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  RL2_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, CUDNN_FMA_MATH));

  // cuDNN's own output sizes must be ours (H1 = (H - K)/S + 1, floor).
  describe(shape, chunk0, false, image_desc_, f1_desc_, f2_desc_);
  int on = 0, oc = 0, oh = 0, ow = 0;
  RL2_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv_desc_, image_desc_, w1_desc_, &on, &oc, &oh, &ow));
  RL2_CHECK(on == chunk0 && oc == shape.filters && oh == shape.h1() && ow == shape.w1(),
            "cuDNN's conv1 output size differs from encoder.hpp's");
  RL2_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv_desc_, f1_desc_, w2_desc_, &on, &oc, &oh, &ow));
  RL2_CHECK(on == chunk0 && oc == shape.filters && oh == shape.h2() && ow == shape.w2(),
            "cuDNN's conv2 output size differs from encoder.hpp's");

  // An algorithm for each of the five calls (x, w, y of the convolution; dy = y's gradient).
  const auto fwd = [&](cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t y,
                       cudnnConvolutionFwdAlgo_t* algo) {
    return choose(
        kFwdAlgos,
        [&](cudnnConvolutionFwdAlgo_t a, size_t* b) {
          return cudnnGetConvolutionForwardWorkspaceSize(dnn_, x, w, conv_desc_, y, a, b);
        },
        algo);
  };
  const auto bwd_filter = [&](cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy, cudnnFilterDescriptor_t dw,
                              cudnnConvolutionBwdFilterAlgo_t* algo) {
    return choose(
        kBwdFilterAlgos,
        [&](cudnnConvolutionBwdFilterAlgo_t a, size_t* b) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(dnn_, x, dy, conv_desc_, dw, a, b);
        },
        algo);
  };
  const auto bwd_data = [&](cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy, cudnnTensorDescriptor_t dx,
                            cudnnConvolutionBwdDataAlgo_t* algo) {
    return choose(
        kBwdDataAlgos,
        [&](cudnnConvolutionBwdDataAlgo_t a, size_t* b) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(dnn_, w, dy, conv_desc_, dx, a, b);
        },
        algo);
  };
  // conv1 reads the image in place; should cuDNN support no deterministic algorithm on that strided
  // descriptor (forward or filter gradient), the image rows are copied to a packed buffer per chunk.
  const auto choose_conv1 = [&]() {
    return fwd(image_desc_, w1_desc_, f1_desc_, &fwd1_) && bwd_filter(image_desc_, f1_desc_, w1_desc_, &bwd_filter1_);
  };
  if (!choose_conv1()) {
    packed_image_ = true;
    describe(shape, chunk0, true, image_desc_, f1_desc_, f2_desc_);
    RL2_CHECK(choose_conv1(), "cuDNN offers no deterministic FP32 algorithm for conv1 at " + shape_str(shape));
  }
  const bool conv2_ok = fwd(f1_desc_, w2_desc_, f2_desc_, &fwd2_) &&
                        bwd_filter(f1_desc_, f2_desc_, w2_desc_, &bwd_filter2_) &&
                        bwd_data(w2_desc_, f2_desc_, f1_desc_, &bwd_data2_);
  RL2_CHECK(conv2_ok, "cuDNN offers no deterministic FP32 algorithm for conv2 at " + shape_str(shape));

  const size_t rows = static_cast<size_t>(max_rows), c0 = static_cast<size_t>(chunk0);
  f1_ = DeviceBuffer<float>(rows * static_cast<size_t>(d.f1));
  f2_ = DeviceBuffer<float>(rows * static_cast<size_t>(d.flat));
  y_ = DeviceBuffer<float>(rows * static_cast<size_t>(d.out));
  dz_ = DeviceBuffer<float>(rows * static_cast<size_t>(d.out));
  d2_ = DeviceBuffer<float>(rows * static_cast<size_t>(d.flat));
  d1_ = DeviceBuffer<float>(c0 * static_cast<size_t>(d.f1));
  if (packed_image_) image_ = DeviceBuffer<float>(c0 * static_cast<size_t>(d.img));
  partials_ = DeviceBuffer<double>(static_cast<size_t>(std::max({d.F, d.Ni, d.Ne}) * kReduceBlocks));
  // The workspace: the larger need of a full chunk and of a single row (a last, partial chunk has any
  // size in between; set_rows grows the workspace should another size ask for more).
  size_t need = workspace_bytes();
  describe(shape, 1, packed_image_, image_desc_, f1_desc_, f2_desc_);
  desc_rows_ = 1;
  need = std::max(need, workspace_bytes());
  work_ = DeviceBuffer<unsigned char>(need);
}

CudnnEncoder::~CudnnEncoder() {
  cudaStreamSynchronize(stream_);  // no buffer is freed under queued work (the descriptors go with owners_)
}

size_t CudnnEncoder::workspace_bytes() const {
  size_t need = 0, b = 0;
  RL2_CUDNN_CHECK(
      cudnnGetConvolutionForwardWorkspaceSize(dnn_, image_desc_, w1_desc_, conv_desc_, f1_desc_, fwd1_, &b));
  need = std::max(need, b);
  RL2_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(dnn_, f1_desc_, w2_desc_, conv_desc_, f2_desc_, fwd2_, &b));
  need = std::max(need, b);
  RL2_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(dnn_, image_desc_, f1_desc_, conv_desc_, w1_desc_,
                                                                 bwd_filter1_, &b));
  need = std::max(need, b);
  RL2_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(dnn_, f1_desc_, f2_desc_, conv_desc_, w2_desc_,
                                                                 bwd_filter2_, &b));
  need = std::max(need, b);
  RL2_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(dnn_, w2_desc_, f2_desc_, conv_desc_, f1_desc_,
                                                               bwd_data2_, &b));
  return std::max(need, b);
}

void CudnnEncoder::set_rows(int64_t n) {
  if (n == desc_rows_) return;
  desc_rows_ = -1;  // until the descriptors describe n
  describe(shape_, n, packed_image_, image_desc_, f1_desc_, f2_desc_);
  auto known = workspace_by_rows_.find(n);
  if (known == workspace_by_rows_.end()) known = workspace_by_rows_.emplace(n, workspace_bytes()).first;
  const size_t need = known->second;
  if (need > work_.size()) {
    RL2_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old workspace may be in use by queued work
    work_ = DeviceBuffer<unsigned char>(need);
  }
  desc_rows_ = n;
}

const float* CudnnEncoder::image_rows(const float* x, int64_t r0, int64_t n) {
  const Sizes d(shape_);
  if (!packed_image_) return x + r0 * d.in;
  const size_t image_bytes = static_cast<size_t>(d.img) * sizeof(float);
  RL2_CUDA_CHECK(cudaMemcpy2DAsync(image_.data(), image_bytes, x + r0 * d.in, static_cast<size_t>(d.in) * sizeof(float),
                                   image_bytes, static_cast<size_t>(n), cudaMemcpyDeviceToDevice, stream_));
  return image_.data();
}

void CudnnEncoder::forward(const float* params, const float* x, int64_t M, float* y) {
  RL2_CHECK(M >= 0 && M <= max_rows_, "CudnnEncoder::forward: " + std::to_string(M) + " rows, at most " +
                                          std::to_string(max_rows_));
  last_rows_ = -1;  // until this forward's activations are queued
  if (M == 0) {
    last_rows_ = 0;
    return;
  }
  const Sizes d(shape_);
  const EncoderTensors<const float> p(shape_, params);
  const HandleScope scope(dnn_, blas_, stream_);
  const float one = 1.0f, zero = 0.0f;
  // cuDNN semantics: y = alpha conv(x) + beta y with host float scalars (FP32 data); beta = 0 overwrites.
  for (int64_t r0 = 0; r0 < M; r0 += chunk_rows_) {
    const int64_t n = std::min(chunk_rows_, M - r0);
    set_rows(n);
    float* f1 = f1_.data() + r0 * d.f1;
    float* f2 = f2_.data() + r0 * d.flat;
    RL2_CUDNN_CHECK(cudnnConvolutionForward(dnn_, &one, image_desc_, image_rows(x, r0, n), w1_desc_, p.conv1_w,
                                            conv_desc_, fwd1_, work_.data(), work_.size(), &zero, f1_desc_, f1));
    launch(ops::BiasRelu{n, shape_.filters, d.P1, d.f1, p.conv1_b, f1, nullptr}, stream_);
    RL2_CUDNN_CHECK(cudnnConvolutionForward(dnn_, &one, f1_desc_, f1, w2_desc_, p.conv2_w, conv_desc_, fwd2_,
                                            work_.data(), work_.size(), &zero, f2_desc_, f2));
    launch(ops::BiasRelu{n, shape_.filters, d.P2, d.flat, p.conv2_b, f2, nullptr}, stream_);
  }
  // y_img [M, Ni] (row stride out) = f2 [M, flat] W_imgᵀ: column-major y_imgᵀ [Ni, M] = W_img f2ᵀ, where
  // W_img [Ni, flat] row-major is column-major [flat, Ni] (so op T gives W_img) and f2ᵀ is [flat, M].
  sgemm(blas_, true, false, d.Ni, M, d.flat, p.image_fc_w, d.flat, f2_.data(), d.flat, 0.0f, y_.data(), d.out);
  // y_ext [M, Ne] = extra [M, E] (rows of x, stride in) W_extᵀ, the same way.
  sgemm(blas_, true, false, d.Ne, M, d.E, p.extra_fc_w, d.E, x + d.img, d.in, 0.0f, y_.data() + d.Ni, d.out);
  launch(ops::BiasRelu{M, shape_.image_fc, 1, d.out, p.image_fc_b, y_.data(), y}, stream_);
  launch(ops::BiasRelu{M, shape_.extra_fc, 1, d.out, p.extra_fc_b, y_.data() + d.Ni, y + d.Ni}, stream_);
  last_rows_ = M;
}

void CudnnEncoder::backward(const float* params, const float* x, int64_t M, const float* d_y, float* d_params) {
  RL2_CHECK(M == last_rows_, "CudnnEncoder::backward: " + std::to_string(M) +
                                 " rows, but the last forward had " + std::to_string(last_rows_));
  if (M == 0) return;
  const Sizes d(shape_);
  const EncoderTensors<const float> p(shape_, params);
  const EncoderTensors<float> g(shape_, d_params);
  const HandleScope scope(dnn_, blas_, stream_);
  const float one = 1.0f, zero = 0.0f;
  // dz [M, out] = d_y masked by y's ReLU.
  launch(ops::ReluMask{M * d.out, y_.data(), d_y, dz_.data()}, stream_);
  // d W_img [Ni, flat] += dz_imgᵀ f2: column-major [flat, Ni] += f2ᵀ [flat, M] · dz_img [M, Ni] (dz_imgᵀ
  // [Ni, M] column-major, transposed).
  sgemm(blas_, false, true, d.flat, d.Ni, M, f2_.data(), d.flat, dz_.data(), d.out, 1.0f, g.image_fc_w, d.flat);
  // d W_ext [Ne, E] += dz_extᵀ extra, the same way with extra's rows (stride in) inside x.
  sgemm(blas_, false, true, d.E, d.Ne, M, x + d.img, d.in, dz_.data() + d.Ni, d.out, 1.0f, g.extra_fc_w, d.E);
  double* partials = partials_.data();
  channel_sums(M, shape_.image_fc, 1, d.out, dz_.data(), partials, g.image_fc_b, stream_);
  channel_sums(M, shape_.extra_fc, 1, d.out, dz_.data() + d.Ni, partials, g.extra_fc_b, stream_);
  // d2 [M, flat] = dz_img [M, Ni] W_img [Ni, flat]: column-major d2ᵀ [flat, M] = W_imgᵀ [flat, Ni] dz_imgᵀ.
  sgemm(blas_, false, false, d.flat, M, d.Ni, p.image_fc_w, d.flat, dz_.data(), d.out, 0.0f, d2_.data(), d.flat);
  launch(ops::ReluMask{M * d.flat, f2_.data(), d2_.data(), d2_.data()}, stream_);
  channel_sums(M, shape_.filters, d.P2, d.flat, d2_.data(), partials, g.conv2_b, stream_);
  // cuDNN semantics: BackwardFilter computes dw = alpha dW + beta dw, so beta = 1 ACCUMULATES into
  // d_params across chunks and calls; BackwardData with beta = 0 overwrites d1.
  for (int64_t r0 = 0; r0 < M; r0 += chunk_rows_) {
    const int64_t n = std::min(chunk_rows_, M - r0);
    set_rows(n);
    const float* f1 = f1_.data() + r0 * d.f1;
    const float* d2 = d2_.data() + r0 * d.flat;
    RL2_CUDNN_CHECK(cudnnConvolutionBackwardFilter(dnn_, &one, f1_desc_, f1, f2_desc_, d2, conv_desc_, bwd_filter2_,
                                                   work_.data(), work_.size(), &one, w2_desc_, g.conv2_w));
    RL2_CUDNN_CHECK(cudnnConvolutionBackwardData(dnn_, &one, w2_desc_, p.conv2_w, f2_desc_, d2, conv_desc_, bwd_data2_,
                                                 work_.data(), work_.size(), &zero, f1_desc_, d1_.data()));
    launch(ops::ReluMask{n * d.f1, f1, d1_.data(), d1_.data()}, stream_);
    channel_sums(n, shape_.filters, d.P1, d.f1, d1_.data(), partials, g.conv1_b, stream_);
    RL2_CUDNN_CHECK(cudnnConvolutionBackwardFilter(dnn_, &one, image_desc_, image_rows(x, r0, n), f1_desc_, d1_.data(),
                                                   conv_desc_, bwd_filter1_, work_.data(), work_.size(), &one,
                                                   w1_desc_, g.conv1_w));
  }
}

}  // namespace rl2
