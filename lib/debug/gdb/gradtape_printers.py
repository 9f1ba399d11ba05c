# gdb pretty-printers for gradtape: tensors and variables print their dtype,
# shape and leading values, tapes their entry count and last entries; they
# read the library's debug information.
# Embedded in libgradtape's .debug_gdb_scripts section, so gdb loads them with
# the library (once its directory is in gdb's auto-load safe-path); or
# `source` this file by hand.
import re

import gdb

LEADING_VALUES = 10
LAST_ENTRIES = 5
# What a printer says when the types it reads have no debug information: the
# program's own rarely completes them, and a release build or a
# distribution's package builds the library without -g.
NO_LIBRARY_DEBUG_INFO = ('(its %s needs the debug information of libgradtape: '
                         'build the library with -g, or install its debug symbols)')


def _shared_ptr_get(value):
    return value['_M_ptr']


def _string(value):
    return value['_M_dataplus']['_M_p'].string(length=int(value['_M_string_length']))


def _vector_items(value):
    start = value['_M_impl']['_M_start']
    finish = value['_M_impl']['_M_finish']
    return [(start + i).dereference() for i in range(int(finish - start))]


def _shape(xarray):
    shape = xarray['m_shape']
    begin, end = shape['m_begin'], shape['m_end']
    return [int((begin + i).dereference()) for i in range(int(end - begin))]


def _format_shape(dims):
    return '(' + ', '.join(str(d) for d in dims) + (',)' if len(dims) == 1 else ')')


def _dtype(type_name):
    return 'float64' if 'double' in type_name else 'float32'


def describe_tensor(value):
    node = _shared_ptr_get(value['node_'])
    if int(node) == 0:
        return 'undefined tensor'
    node = node.dereference()
    # A variable's storage keeps its value in the node of its current value.
    holder = _shared_ptr_get(node['current']).dereference() if bool(node['is_variable_storage']) else node
    xarray = holder['value']
    storage = xarray['m_storage']
    begin, end = storage['p_begin'], storage['p_end']
    count = int(end - begin)
    leading = [float((begin + i).dereference()) for i in range(min(count, LEADING_VALUES))]
    values = ', '.join('%.6g' % v for v in leading) + (', ...' if count > LEADING_VALUES else '')
    kind = 'tensor'
    variable = _shared_ptr_get(node['variable'])
    if int(variable) != 0:
        variable = variable.dereference()
        trainable = '' if bool(variable['trainable']) else ', not trainable'
        storage_kind = 'variable' if bool(node['is_variable_storage']) else 'read of variable'
        kind = "%s '%s'%s" % (storage_kind, _string(variable['name']), trainable)
    return '%s %s, shape %s, %d elements: [%s]' % (
        _dtype(str(xarray.type.strip_typedefs())), kind, _format_shape(_shape(xarray)), count, values)


class TensorPrinter:
    def __init__(self, value):
        self.value = value

    def to_string(self):
        try:
            return describe_tensor(self.value)
        except gdb.error:
            return '%s %s' % (_dtype(str(self.value.type.strip_typedefs())), NO_LIBRARY_DEBUG_INFO % 'value')


def _source_location(site):
    impl = site['_M_impl']
    if int(impl) == 0:
        return '?'
    impl = impl.dereference()
    return '%s:%d' % (impl['_M_file_name'].string(), int(impl['_M_line']))


def _describe(description):
    return '%s %s' % (_format_shape([int(d) for d in _svector(description['shape'])]), description['dtype'].string())


def _svector(shape):
    begin, end = shape['m_begin'], shape['m_end']
    return [(begin + i).dereference() for i in range(int(end - begin))]


class _NonPolymorphic:
    """Members of a polymorphic object read through its static type's field
    offsets: dereferencing the pointer makes gdb look for the dynamic type's
    RTTI, which it cannot name for types built from lambdas, and warn."""

    def __init__(self, pointer):
        self.address = pointer.cast(gdb.lookup_type('char').pointer())
        self.type = pointer.type.target().strip_typedefs()

    def __getitem__(self, name):
        field = next(f for f in self.type.fields() if f.name == name)
        return (self.address + field.bitpos // 8).cast(field.type.pointer()).dereference()


def _record_inputs(record):
    # Up to three inputs are kept inline (op_record::inline_inputs), more in a vector.
    spilled = _vector_items(record['spilled_inputs'])
    if spilled:
        return spilled
    inline = record['inline_inputs']['_M_elems']
    return [inline[i] for i in range(int(record['input_count']))]


class TapePrinter:
    def __init__(self, value):
        self.value = value

    def to_string(self):
        try:
            return self._entries()
        except gdb.error:
            return 'GradientTape ' + NO_LIBRARY_DEBUG_INFO % 'list of entries'

    def _entries(self):
        state = _shared_ptr_get(self.value['state_']).dereference()
        entries = _vector_items(state['entries'])
        options = state['options']
        kind = 'persistent' if bool(options['persistent']) else 'non-persistent'
        lines = ['GradientTape (%s, %d entries)' % (kind, len(entries))]
        first = max(0, len(entries) - LAST_ENTRIES)
        if first:
            lines.append('  ...')
        for index in range(first, len(entries)):
            record = _shared_ptr_get(entries[index]['record'])
            if int(record) == 0:
                lines.append('  #%d (released)' % index)
                continue
            record = _NonPolymorphic(record)
            op = record['op']
            name = op['_M_str'].string(length=int(op['_M_len']))
            inputs = ', '.join(_describe(d) for d in _record_inputs(record))
            lines.append('  #%d %s %s -> %s  %s' % (index, name, inputs, _describe(record['output']),
                                                  _source_location(record['site'])))
        return '\n'.join(lines)


def _lookup(value):
    type_name = str(value.type.strip_typedefs().unqualified())
    if re.match(r'^gradtape::basic_(tensor|variable)<(float|double)>$', type_name):
        return TensorPrinter(value)
    if type_name == 'gradtape::GradientTape':
        return TapePrinter(value)
    return None


gdb.pretty_printers.append(_lookup)
