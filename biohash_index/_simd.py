"""Primitives for numba kernels that numba cannot express from Python loops.

Two compare 8 consecutive float32 values with a threshold in one vector instruction and
read the result as a byte, bit l for value l (``movmskps`` on x86; LLVM lowers the same IR
on any CPU):

- ``ge_mask8``: that byte, which is also a packed code byte when the threshold is the
  hash_length-th largest value;
- ``compress8``: appends the indices of the values that pass to an int32 buffer, a table
  lookup and one 8-wide store instead of a compare-and-store per value.

The comparison is ``x >= t``, so a NaN never passes, as in Python.

Two serve Hamming distances over codes that faiss holds:

- ``popcount``: the set bits of a uint64 (one ``popcnt`` instruction where the CPU has it);
- ``load_at``: the number stored at an address (an int64, as faiss's SWIG pointers give it).
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic

I32, I64 = ir.IntType(32), ir.IntType(64)
V8F, V8I = ir.VectorType(ir.FloatType(), 8), ir.VectorType(I32, 8)


def _positions_table() -> np.ndarray:
    """int32 (256 * 8,): entries 8b .. 8b+7 list the set bits of byte b in increasing order."""
    table = np.zeros((256, 8), np.int32)
    for b in range(256):
        bits = [i for i in range(8) if b >> i & 1]
        table[b, :len(bits)] = bits
    return table.ravel()


POSITIONS = _positions_table()


def _float32_array(t) -> bool:
    return isinstance(t, types.Array) and t.dtype == types.float32 and t.ndim == 1


def _int32_array(t) -> bool:
    return isinstance(t, types.Array) and t.dtype == types.int32 and t.ndim == 1


def _data(context, builder, array_type, array):
    return context.make_array(array_type)(context, builder, array).data


def _load8(builder, pointer, offset, vector_type):
    address = builder.gep(pointer, [offset])
    return builder.load(builder.bitcast(address, vector_type.as_pointer()), align=4)


def _splat(builder, value, vector_type):
    undef = ir.Constant(vector_type, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(I32, 0))
    return builder.shuffle_vector(one, undef, ir.Constant(V8I, [0] * 8))


def _ge_mask(builder, data, j, t):
    """IR: the byte whose bit l says data[j + l] >= t, as int64."""
    ge = builder.fcmp_ordered(">=", _load8(builder, data, j, V8F), _splat(builder, t, V8F))
    return builder.zext(builder.bitcast(ge, ir.IntType(8)), I64)


@intrinsic
def ge_mask8(typingctx, row, j, t):
    """int64 with bit l set where row[j + l] >= t, l < 8.

    row: C-contiguous float32 (m,); j: int64, j + 8 <= m (not checked); t: float32.
    """
    if not (_float32_array(row) and row.layout == "C" and j == types.int64
            and t == types.float32):
        return None

    def codegen(context, builder, signature, args):
        data = _data(context, builder, signature.args[0], args[0])
        return _ge_mask(builder, data, args[1], args[2])

    return types.int64(row, j, t), codegen


@intrinsic
def compress8(typingctx, row, j, t, out, c):
    """Write the indices j + l (l < 8, increasing) where row[j + l] >= t to out[c:], and
    return c plus their count. Always writes out[c:c + 8]: out needs 8 slots of spare room.

    row: C-contiguous float32 (m,); j: int64, j + 8 <= m (not checked); t: float32;
    out: C-contiguous int32; c: int64.
    """
    if not (_float32_array(row) and row.layout == "C" and j == types.int64
            and t == types.float32 and _int32_array(out) and out.layout == "C"
            and c == types.int64):
        return None

    def codegen(context, builder, signature, args):
        row_a, j_v, t_v, out_a, c_v = args
        mask = _ge_mask(builder, _data(context, builder, signature.args[0], row_a), j_v, t_v)
        table_type = types.Array(types.int32, 1, "C")
        table = context.make_constant_array(builder, table_type, POSITIONS)
        table_data = _data(context, builder, table_type, table)
        lanes = _load8(builder, table_data, builder.mul(mask, ir.Constant(I64, 8)), V8I)
        index = builder.add(lanes, _splat(builder, builder.trunc(j_v, I32), V8I))
        out_data = _data(context, builder, signature.args[3], out_a)
        target = builder.bitcast(builder.gep(out_data, [c_v]), V8I.as_pointer())
        builder.store(index, target, align=4)
        popcount = builder.module.declare_intrinsic("llvm.ctpop", [I64])
        return builder.add(c_v, builder.call(popcount, [mask]))

    return types.int64(row, j, t, out, c), codegen


@intrinsic
def popcount(typingctx, x):
    """int64: the number of set bits of the uint64 x."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        ctpop = builder.module.declare_intrinsic("llvm.ctpop", [I64])
        return builder.call(ctpop, [args[0]])

    return types.int64(x), codegen


@intrinsic
def load_at(typingctx, address, dtype):
    """The number of type ``dtype`` (np.uint8, np.uint32, np.uint64, np.int64, np.float32,
    ...) stored at the int64 ``address``, at any alignment.

    For memory that another library owns (faiss's codes and ids): nothing is checked, the
    caller keeps it alive. Takes and returns scalars only: a helper that takes arrays costs
    reference counting on every call, which dominates a scan of millions of codes.
    """
    if address != types.int64 or not isinstance(dtype, types.NumberClass):
        return None
    value_type = dtype.instance_type

    def codegen(context, builder, signature, args):
        llvm_type = context.get_value_type(value_type)
        pointer = builder.inttoptr(args[0], llvm_type.as_pointer())
        return builder.load(pointer, align=1)

    return value_type(address, dtype), codegen
