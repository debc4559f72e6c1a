"""Why each of tinygrad's tests that fails on teeny fails, read test by test: a verdict and the reason. report.py
puts the verdict beside every failure and counts them against issue 19's bar (teeny's passes, plus the tests of
tinygrad internals and of semantics README documents as deliberately PyTorch's, against tinygrad's passes).

Verdicts:
- INTERNALS: the test checks tinygrad's IR, scheduler, kernel counts, JIT graph or random-number algorithm, or
  reaches a private name; teeny's values for the same ops are checked by its own suite.
- PYTORCH: teeny gives PyTorch's result or raises PyTorch's error where the test pins tinygrad's; the reason names
  the rule in README's "Semantics worth knowing" that says so. Where tinygrad raises because its lazy graph can't
  give the eager answer, teeny's answer was checked against PyTorch's by hand.
- OPEN: something teeny lacks or does differently without a PyTorch reason: the gaps, said plainly.
A failing test missing here shows as "unread" in the report: a new failure nobody has looked at."""

INTERNALS, PYTORCH, OPEN = "tinygrad internals", "PyTorch's semantics", "open"

_GROUPS = [
  (INTERNALS, "reaches into tinygrad's UOp graph (uop.base, .after, .store, .axis, .buf_uop, UOp.const, UOp.variable, "
   "is_realized)", [
    "test/backend/test_nn.py::TestNN::test_load_state_dict_sharded_model",
    "test/backend/test_nn.py::TestNN::test_load_state_dict_sharded_model_dict_same_axis",
    "test/backend/test_randomness.py::TestRandomness::test_rand_is_lazy",
    "test/backend/test_tensor.py::TestTinygrad::test_deviceless_const_construct_device_repr",
    "test/backend/test_tensor.py::TestTinygrad::test_deviceless_const_realize_noop",
    "test/backend/test_tensor.py::TestZeroShapeTensor::test_clone",
    "test/backend/test_tensor.py::TestZeroShapeTensor::test_clone_deviceless_const",
    "test/backend/test_tensor.py::TestZeroShapeTensor::test_clone_deviceless_const_to_cpu",
    "test/backend/test_tensor.py::TestZeroShapeTensor::test_clone_with_shrink",
    "test/backend/test_tensor.py::TestZeroShapeTensor::test_clone_with_shrink_realized",
    "test/backend/test_tensor.py::TestZeroShapeTensor::test_max_shape",
    "test/backend/test_tensor.py::TestZeroShapeTensor::test_numpy_deviceless_const",
    "test/unit/test_assign.py::TestAfterCachePatterns::test_double_store_after",
    "test/unit/test_assign.py::TestAfterCachePatterns::test_double_store_after_different_sizes",
    "test/unit/test_assign.py::TestAssign::test_assign_add",
    "test/unit/test_assign.py::TestAssign::test_assign_after",
    "test/unit/test_assign.py::TestAssign::test_assign_after_partial",
    "test/unit/test_assign.py::TestAssign::test_assign_changes_buffer_alt",
    "test/unit/test_assign.py::TestAssign::test_assign_deviceless_const",
    "test/unit/test_assign.py::TestAssign::test_assign_slice_add",
    "test/unit/test_assign.py::TestAssign::test_permuted_assignment",
    "test/unit/test_assign.py::TestAssign::test_post_permuted_assignment",
    "test/unit/test_assign.py::TestAssign::test_simple_assignment",
    "test/unit/test_assign.py::TestAssignToUnrealizedView::test_alu",
    "test/unit/test_assign.py::TestAssignToUnrealizedView::test_cast",
    "test/unit/test_assign.py::TestAssignToUnrealizedView::test_const",
    "test/unit/test_assign.py::TestAssignToUnrealizedView::test_contiguous",
    "test/unit/test_assign.py::TestAssignToUnrealizedView::test_copy",
    "test/unit/test_assign.py::TestAssignToUnrealizedView::test_detach_contiguous",
    "test/unit/test_assign.py::TestAssignToUnrealizedView::test_detach_copy",
    "test/unit/test_assign.py::TestAssignToUnrealizedView::test_reduce",
    "test/unit/test_assign.py::TestAssignToUnrealizedView::test_contiguous_backward",
    "test/unit/test_gradient.py::TestTensorGradient::test_implicit_broadcast_alu_gradient",
    "test/unit/test_gradient.py::TestTensorGradient::test_implicit_broadcast_intermediate_accumulation",
    "test/unit/test_gradient.py::TestTensorGradient::test_implicit_broadcast_where_gradient",
    "test/unit/test_jit.py::TestJit::test_jit_const_input",
    "test/unit/test_jit.py::TestJit::test_jit_deviceless_compute_input"]),
  (INTERNALS, "counts kernels or schedule items: teeny fuses by its own rules (its suite asserts its own counts)", [
    "test/backend/test_jit.py::TestJit::test_jit_batch_split",
    "test/unit/test_assign.py::TestAssign::test_assign_contiguous",
    "test/unit/test_assign.py::TestAssign::test_assign_contiguous_permute",
    "test/unit/test_assign.py::TestAssign::test_permuted_assignment_masked_view_possible",
    "test/unit/test_jit.py::TestJit::test_jit_not_capturing",
    "test/backend/test_nn.py::TestNN::test_embedding_one_kernel",
    "test/backend/test_nn.py::TestNN::test_embedding_one_kernel_fused",
    "test/backend/test_nn.py::TestNN::test_embedding_one_kernel_fused_noopt",
    "test/backend/test_randomness.py::TestRandomness::test_threefry_doesnt_use_long",
    "test/backend/test_randomness.py::TestRandomness::test_threefry_same_kernels",
    "test/unit/test_assign.py::TestAssign::test_chained_assign_kernel_count",
    "test/unit/test_assign.py::TestAssign::test_double_assign_from_const"]),
  (INTERNALS, "checks the shape of tinygrad's JIT graph (graph_class, graph batches per device) or mocks its BEAM search", [
    "test/backend/test_jit.py::TestJitGraphSplit::test_jit_multidev",
    "test/backend/test_jit.py::TestJitGraphSplit::test_jit_multidev_xfer",
    "test/backend/test_jit.py::TestJitGraphSplit::test_jit_split_simple",
    "test/backend/test_jit.py::TestJitGraphSplit::test_jit_cpu_several",
    "test/backend/test_jit.py::TestJitGraphSplit::test_jit_cpu_simple",
    "test/unit/test_jit.py::TestJit::test_jitbeam_triggers_beam"]),
  (INTERNALS, "tinygrad's random-number algorithm (threefry counters and bits): teeny's stream is its own, reproducible "
   "per seed, as PyTorch's and tinygrad's differ from each other", [
    "test/backend/test_randomness.py::TestRandomness::test_random_counter_overflow",
    "test/backend/test_randomness.py::TestRandomness::test_threefry_tensors_cnt",
    "test/backend/test_randomness.py::TestRandomness::test_threefry_against_reference",
    "test/backend/test_randomness.py::TestRandomness::test_threefry_against_reference_full",
    "test/backend/test_tensor.py::TestTinygrad::test_randperm"]),
  (INTERNALS, "LAMB's private step counters (b1_t, b2_t): teeny's LAMB keeps its own state", [
    "test/backend/test_optim.py::TestOptim::test_lamb_cpu_offload",
    "test/backend/test_optim.py::TestOptim::test_lamb_cpu_offload_multi"]),
  (PYTORCH, "only tensors made with requires_grad=True get .grad (README: Gradients); the test relies on tinygrad "
   "filling .grad of every float tensor backward() reaches", [
    "test/backend/test_nn.py::TestNN::test_groupnorm", "test/backend/test_nn.py::TestNN::test_instancenorm_2d",
    "test/backend/test_nn.py::TestNN::test_instancenorm_3d", "test/backend/test_nn.py::TestNN::test_layernorm",
    "test/backend/test_nn.py::TestNN::test_layernorm_2d", "test/backend/test_nn.py::TestNN::test_rmsnorm",
    "test/backend/test_ops.py::TestOps::test_cmp_lt_backwards", "test/backend/test_ops.py::TestOps::test_cmp_ne_backwards",
    "test/backend/test_setitem.py::TestWithGrad::test_set_backward", "test/backend/test_setitem.py::TestWithGrad::test_set_iadd_backward",
    "test/backend/test_setitem.py::TestWithGrad::test_set_nonleaf_backward",
    "test/backend/test_setitem.py::TestWithGrad::test_set_overlapping_backward",
    "test/backend/test_tensor.py::TestTinygrad::test_accumulate_gradients", "test/backend/test_tensor.py::TestTinygrad::test_backward_pass",
    "test/backend/test_tensor.py::TestTinygrad::test_backward_pass_diamond_model",
    "test/backend/test_tensor.py::TestTinygrad::test_backward_pass_vjp", "test/backend/test_tensor.py::TestTinygrad::test_const_backward_pass",
    "test/backend/test_tensor.py::TestTinygrad::test_deepwalk_ctx_check", "test/backend/test_tensor.py::TestTinygrad::test_gradcheck",
    "test/backend/test_tensor.py::TestTinygrad::test_jacobian", "test/backend/test_tensor.py::TestTinygrad::test_repr_with_grad",
    "test/backend/test_tensor.py::TestZeroShapeTensor::test_clone_with_grad", "test/test_tiny.py::TestTiny::test_mnist_backward",
    "test/unit/test_gradient.py::TestMultiOutputGradient::test_custom_kernel_multi_output_backward",
    "test/unit/test_gradient.py::TestMultiOutputGradient::test_custom_kernel_multi_output_backward_interacting",
    "test/unit/test_gradient.py::TestMultiOutputGradient::test_custom_kernel_three_output_backward",
    "test/unit/test_gradient.py::TestTensorGradient::test_bare_const_skipped_by_backward",
    "test/unit/test_gradient.py::TestTensorGradient::test_copy_to_device_gradient",
    "test/unit/test_gradient.py::TestTensorGradient::test_gradient_through_clone_from_detached_src",
    "test/unit/test_gradient.py::TestTensorGradient::test_gradient_through_clone_from_grad_src",
    "test/unit/test_gradient.py::TestTensorGradient::test_multiple_backward", "test/unit/test_gradient.py::TestViewGradient::test_expand",
    "test/unit/test_indexing.py::TestAdvancedIndexing::test_numpy_parity_and_backward_2d",
    "test/unit/test_indexing.py::TestAdvancedIndexing::test_numpy_parity_and_backward_3d",
    "test/unit/test_indexing.py::TestIndexing::test_set_item_to_scalar_tensor",
    "test/unit/test_jit.py::TestJit::test_jit_lazy_grad_after_replay"]),
  (PYTORCH, "tinygrad raises because its lazy graph can't give the eager answer; teeny gives PyTorch's (checked by hand: "
   "views follow writes, lazy results keep the values they read, README: Views and writes, Program order)", [
    "test/backend/test_setitem.py::TestWithGrad::test_set_used_before_setitem",
    "test/backend/test_setitem.py::TestWithGrad::test_setitem_raises_on_aliased_uop",
    "test/backend/test_setitem.py::TestWithGrad::test_setitem_raises_on_unrealized_compute_base",
    "test/backend/test_setitem.py::TestWithGrad::test_setitem_raises_with_unrealized_downstream",
    "test/unit/test_assign.py::TestAssign::test_assign_diamond_contiguous_cycle",
    "test/unit/test_assign.py::TestAssign::test_assign_diamond_cycle",
    "test/unit/test_assign.py::TestAssign::test_crossunder_assign",
    "test/unit/test_assign.py::TestAssignOrdering::test_variable_slice_ordering",
    "test/unit/test_gradient.py::TestTensorGradient::test_setitem_on_grad_used_tensor_raises",
    "test/unit/test_assign.py::TestAssignOrdering::test_war_reader_already_depends_on_write"]),
  (PYTORCH, "a write of another dtype is cast to the target's, as torch's copy_ and setitem do (README: In-place "
   "operators); tinygrad raises", [
    "test/backend/test_setitem.py::TestSetitem::test_setitem_dtype_mismatch",
    "test/unit/test_assign.py::TestAssign::test_assign_dtype_mismatch",
    "test/unit/test_assign.py::TestAssign::test_assign_dtype_mismatch_int64_to_float32"]),
  (PYTORCH, "TinyJit gives PyTorch's answers where tinygrad's refuses or aliases: the same tensor twice, views at "
   "other offsets, a jit inside a jit all compute right; a returned result is never overwritten by a later call, "
   "nor freed (README: TinyJit)", [
    "test/unit/test_jit.py::TestJit::test_jit_duplicate_fail",
    "test/unit/test_jit.py::TestJit::test_jit_shape_views_mismatch",
    "test/unit/test_jit.py::TestJitInsideJit::test_jit_jit_error",
    "test/unit/test_jit.py::TestJit::test_jit_buffer_behavior",
    "test/backend/test_jit.py::TestJitFree::test_free_intermediates"]),
  (PYTORCH, "a call PyTorch accepts, with PyTorch's meaning: one_hot(-1) infers the class count, optimizers step "
   "outside Tensor.training, bool(Tensor(3)) and `in` work", [
    "test/backend/test_ops.py::TestOps::test_one_hot",
    "test/backend/test_optim.py::TestOptim::test_assert_tensor_train",
    "test/backend/test_tensor.py::TestTinygrad::test_no_bool"]),
  (PYTORCH, "a call PyTorch refuses, refused with PyTorch's kind of error (README: Errors): shifts of floats, a dtype "
   "that is no dtype (TypeError), Tensor(None), a float index, max of an empty tensor, a gradient of another shape "
   "or none for a non-scalar, an unknown state-dict key, a scatter dim out of range", [
    "test/backend/test_ops.py::TestOps::test_lshift", "test/backend/test_ops.py::TestOps::test_rshift",
    "test/backend/test_ops.py::TestOps::test_prod_dtype_arg", "test/backend/test_ops.py::TestOps::test_sum_dtype_arg",
    "test/backend/test_tensor.py::TestTinygrad::test_tensor_dtype_errors",
    "test/backend/test_tensor.py::TestTinygrad::test_zerosized_tensors",
    "test/unit/test_indexing.py::TestIndexing::test_index",
    "test/backend/test_tensor.py::TestZeroShapeTensor::test_reduce_default",
    "test/unit/test_gradient.py::TestTensorGradient::test_with_custom_gradient",
    "test/unit/test_gradient.py::TestTensorGradient::test_non_scalar_output",
    "test/backend/test_nn.py::TestNN::test_load_conv_num_batches_tracked",
    "test/backend/test_ops.py::TestOps::test_scatter_no_reduce_tensor_src"]),
  (PYTORCH, "PyTorch's numbers where tinygrad's differ (README: Gradients, Sorting ... linear algebra, Indexing): "
   "sigmoid written as exp(x)/(1+exp(x)) has torch's NaN gradient at x=300, qr() is torch's reduced QR, a list of "
   "index lists is one array index (numpy's rule, which PyTorch's deprecation warning announces)", [
    "test/backend/test_ops.py::TestOps::test_sigmoid_alt_extreme",
    "test/unit/test_linalg.py::TestLinAlg::test_qr_general",
    "test/unit/test_indexing.py::TestAdvancedIndexing::test_integer_array_indexing",
    "test/unit/test_indexing.py::TestAdvancedIndexing::test_numpy_parity_and_backward_4d"]),
  (OPEN, "devices teeny lacks: tinygrad's DISK (files as tensors) and PYTHON (its emulator); teeny's CPU device is "
   "named LLVM ('CPU' is accepted and means it)", [
    "test/backend/test_tensor.py::TestTinygrad::test_copy_from_disk", "test/unit/test_assign.py::TestAssign::test_disk_assignment",
    "test/unit/test_assign.py::TestAssign::test_assign_copy", "test/backend/test_randomness.py::TestRandomness::test_randn_device"]),
  (OPEN, "bitcast to another item size is a copy here, and writes into it raise (PyTorch's is a view; tinygrad's "
   "writes through only on DISK)", ["test/unit/test_assign.py::TestAssign::test_assign_bitcast_different_size"]),
  (OPEN, "uint8 bilinear interpolate: teeny rounds the exact value once; PyTorch's uint8 kernel is a separable "
   "fixed-point one (rounded per pass), so 1 in 5 results differ by 1", ["test/backend/test_ops.py::TestOpsUint8::test_interpolate_bilinear"]),
  (OPEN, "tinygrad's is_param (parameters it marks itself); teeny's parameters are tensors with requires_grad", [
    "test/backend/test_tensor.py::TestTinygrad::test_const_backward_pass_optimizer"]),
  (OPEN, "an unknown pad mode raises teeny's ArgumentError (a ValueError and a RuntimeError), PyTorch's "
   "NotImplementedError", ["test/backend/test_ops.py::TestOps::test_pad"]),
]

VERDICTS: dict[str, tuple[str, str]] = {}
for _verdict, _reason, _nodeids in _GROUPS:
  for _nodeid in _nodeids:
    if _nodeid in VERDICTS: raise ValueError(f"{_nodeid} has two verdicts")
    VERDICTS[_nodeid] = (_verdict, _reason)
