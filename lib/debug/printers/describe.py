# What gradtape's debugger printers say, for gdb and LLDB alike: tensors and
# variables their dtype, shape and leading values; tapes their entry count and
# last entries with call sites; layers and models their path, kind, built
# input shape and variables; xtensor arrays (integer labels, say) their values
# as NumPy prints them. They read the library's debug information.
#
# Values follow gdb.Value's interface: v['member'], int(v), pointer + i,
# pointer - pointer, v.dereference(), v.string(length=n), v.cast(type),
# v.type with strip_typedefs(), target(), pointer(), fields() and sizeof. The
# debugger's own part, built into one file after this one, defines `Error`
# (what a read without debug information raises), `pointer_type(name)` and
# `symbol_at(address)` (the name of the symbol an address falls in, or None).
import re

LEADING_VALUES = 10
# NumPy's print options: arrays of more elements are summarised, keeping this
# many at each end of every axis.
SUMMARY_THRESHOLD = 1000
EDGE_ITEMS = 3
# A layer lists at most this many of its variables.
LISTED_VARIABLES = 12
# How many of a tape's last entries are shown, until the user sets another
# count (gdb: `set gradtape-entries N`; LLDB: `gradtape-entries N`).
DEFAULT_TAPE_ENTRIES = 5

# What a printer says when the types it reads have no debug information: the
# program's own rarely completes them, and a release build or a
# distribution's package builds the library without -g.
NO_LIBRARY_DEBUG_INFO = ('(its %s needs the debug information of libgradtape: '
                         'build the library with -g, or install its debug symbols)')

TENSOR_TYPE = re.compile(r'^gradtape::basic_(tensor|variable)<(float|double)>$')
TAPE_TYPE = 'gradtape::GradientTape'
# The layer handles by name: a program built by Clang carries only the
# declarations of the library's classes (the library holds their
# definitions), so a model's base classes may have to be recognised so.
LAYER_TYPE = re.compile(r'^gradtape::basic_(layer|model|sequential|dense|conv1d|conv2d|conv2d_transpose|'
                        r'depthwise_conv2d|max_pool2d|average_pool2d|global_average_pooling2d|flatten|dropout|'
                        r'activation_layer|batch_normalization|layer_normalization|embedding|multi_head_attention|'
                        r'recurrent_layer|simple_rnn|lstm|gru|bidirectional)<(float|double)>$')
ARRAY_TYPE = re.compile(r'^xt::xarray_container<xt::uvector<([a-z ]+?), ')
ELEMENT_TYPES = {
    'long': 'int64', 'long int': 'int64', 'long long': 'int64', 'int': 'int32', 'unsigned long': 'uint64',
    'unsigned char': 'uint8', 'bool': 'bool', 'float': 'float32', 'double': 'float64',
}


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


def tensor_summary(value, type_name):
    try:
        return describe_tensor(value)
    except Error:
        return '%s %s' % (_dtype(type_name), NO_LIBRARY_DEBUG_INFO % 'value')


def _source_location(site):
    if int(site['line_']) == 0:
        return '?'
    return '%s:%d' % (site['file_'].string(), int(site['line_']))


def _describe(description):
    return '%s %s' % (_format_shape([int(d) for d in _svector(description['shape'])]), description['dtype'].string())


def _svector(shape):
    begin, end = shape['m_begin'], shape['m_end']
    return [(begin + i).dereference() for i in range(int(end - begin))]


class _NonPolymorphic:
    """Members of a polymorphic object read through its static type's field
    offsets: dereferencing the pointer makes the debugger look for the
    dynamic type's RTTI, which it cannot name for types built from lambdas."""

    def __init__(self, pointer):
        self.address = pointer.cast(pointer_type('char'))
        self.type = pointer.type.target().strip_typedefs()

    def __getitem__(self, name):
        # Without the library's debug information the type has no fields.
        field = next((f for f in self.type.fields() if f.name == name), None)
        if field is None:
            raise Error('no member %s in %s' % (name, self.type))
        return (self.address + field.bitpos // 8).cast(field.type.pointer()).dereference()


def _record_inputs(record):
    # Up to three inputs are kept inline (op_record::inline_inputs), more in a vector.
    spilled = _vector_items(record['spilled_inputs'])
    if spilled:
        return spilled
    inline = record['inline_inputs']['_M_elems']
    return [inline[i] for i in range(int(record['input_count']))]


def describe_tape(value, shown):
    state = _shared_ptr_get(value['state_']).dereference()
    entries = _vector_items(state['entries'])
    options = state['options']
    kind = 'persistent' if bool(options['persistent']) else 'non-persistent'
    lines = ['GradientTape (%s, %d entries)' % (kind, len(entries))]
    first = max(0, len(entries) - shown)
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
        layer = _shared_ptr_get(record['layer'])
        if int(layer) != 0:
            name = _string(layer.dereference()) + ': ' + name
        inputs = ', '.join(_describe(d) for d in _record_inputs(record))
        lines.append('  #%d %s %s -> %s  %s' % (index, name, inputs, _describe(record['output']),
                                              _source_location(record['site'])))
    return '\n'.join(lines)


def tape_summary(value, shown):
    try:
        return describe_tape(value, shown)
    except Error:
        return 'GradientTape ' + NO_LIBRARY_DEBUG_INFO % 'list of entries'


def _dynamic_class(pointer):
    """The class of the object `pointer` points to, from its vtable's symbol:
    the debuggers' dynamic types need RTTI names they cannot always find for
    classes in anonymous namespaces."""
    vtable = int(pointer.cast(pointer_type('long')).dereference())
    match = re.match(r'vtable for (.+)$', symbol_at(vtable) or '')
    return match.group(1) if match else None


def _layer_kind(node_pointer):
    """Keras's name of a layer's class ("dense", "lstm"), or a model's own class name."""
    dynamic = _dynamic_class(node_pointer) or ''
    if 'model_node<' in dynamic:
        # model_node adds one member to layer_node, the model object that owns it.
        base = node_pointer.type.target().strip_typedefs()
        owner_address = node_pointer.cast(pointer_type('char')) + base.sizeof
        owner = owner_address.cast(pointer_type('long').pointer()).dereference()
        if int(owner) != 0:
            return _dynamic_class(owner) or 'model'
        return 'model'
    match = re.search(r'(\w+)_node<', dynamic)
    return match.group(1) if match else 'layer'


def _layer_variables(node, prefix, seen, out):
    if int(node.address) in seen:
        return
    seen.add(int(node.address))
    for slot in _vector_items(node['own']):
        variable = _shared_ptr_get(slot['second']['node_']).dereference()
        info = _shared_ptr_get(variable['variable']).dereference()
        dims = [int(d) for d in _svector(info['shape'])]
        out.append('%s/%s %s' % (prefix, _string(slot['first']), _format_shape(dims)))
    for child in _vector_items(node['children']):
        child_node = _NonPolymorphic(_shared_ptr_get(child['second']))
        _layer_variables(child_node, prefix + '/' + _string(child['first']), seen, out)


def describe_layer(value):
    pointer = _shared_ptr_get(value['node_'])
    if int(pointer) == 0:
        return 'empty layer handle'
    node = _NonPolymorphic(pointer)
    path = _string(node['path'])
    kind = _layer_kind(pointer)
    if bool(node['built']):
        built = 'built for input %s' % _format_shape([int(d) for d in _svector(node['built_input_shape'])])
    else:
        built = 'not built'
    variables = []
    _layer_variables(node, path, set(), variables)
    listed = variables[:LISTED_VARIABLES]
    more = ['... %d more' % (len(variables) - len(listed))] if len(variables) > len(listed) else []
    return "%s '%s', %s, %d variables%s" % (
        kind, path, built, len(variables), ''.join('\n  ' + line for line in listed + more))


def layer_summary(value):
    try:
        return describe_layer(value)
    except Error:
        return 'layer ' + NO_LIBRARY_DEBUG_INFO % 'description'


def _numpy_text(read, count, dims, element):
    """NumPy's layout: nested brackets, and past SUMMARY_THRESHOLD elements
    only EDGE_ITEMS at each end of every axis (read(i) gives element i, so
    that only those are read)."""
    summarise = count > SUMMARY_THRESHOLD

    def item(i):
        v = read(i)
        if element == 'bool':
            return 'True' if bool(v) else 'False'
        return ('%g' % float(v)) if element.startswith('float') else str(int(v))

    def nest(offset, axis):
        if axis == len(dims):
            return item(offset)
        stride = 1
        for d in dims[axis + 1:]:
            stride *= d
        extent = dims[axis]
        if summarise and extent > 2 * EDGE_ITEMS:
            picked = list(range(EDGE_ITEMS)) + [None] + list(range(extent - EDGE_ITEMS, extent))
        else:
            picked = list(range(extent))
        parts = ['...' if i is None else nest(offset + i * stride, axis + 1) for i in picked]
        separator = ', ' if axis == len(dims) - 1 else ',\n' + ' ' * (axis + 1)
        return '[' + separator.join(parts) + ']'

    return nest(0, 0)


def describe_array(value, element):
    dims = _shape(value)
    storage = value['m_storage']
    begin, end = storage['p_begin'], storage['p_end']
    count = int(end - begin)
    total = 1
    for d in dims:
        total *= d
    if total != count:
        return '%s array, shape %s (storage of %d elements)' % (element, _format_shape(dims), count)
    text = _numpy_text(lambda i: (begin + i).dereference(), count, dims, element)
    return '%s array, shape %s: %s' % (element, _format_shape(dims), text)


def array_summary(value, element):
    try:
        return describe_array(value, element)
    except Error:
        return '%s array (its values need debug information)' % element


def array_element(type_name):
    """The NumPy dtype of an xt::xarray's elements, or None for another type."""
    array = ARRAY_TYPE.match(type_name)
    return ELEMENT_TYPES.get(array.group(1)) if array else None
