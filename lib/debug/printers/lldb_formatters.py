# LLDB's part of gradtape's printers (describe.py says what they print). Built
# into one module after describe.py and installed as
# share/gradtape/lldb/gradtape_lldb.py:
#
#   (lldb) command script import /usr/share/gradtape/lldb/gradtape_lldb.py
#   (lldb) gradtape-entries 20          # how many of a tape's last entries print
#
# LLDB's values are wrapped so that describe.py reads them as it reads gdb's.
import lldb

_target = None
_shown_entries = DEFAULT_TAPE_ENTRIES


class Error(Exception):
    """A member the debug information does not describe, or unreadable memory."""


class _Field:
    def __init__(self, member, is_base_class):
        self.name = member.GetName()
        self.bitpos = member.GetOffsetInBits()
        self.type = _Type(member.GetType())
        self.is_base_class = is_base_class


_complete_types = {}


def _complete(sbtype):
    """The type with its members: a program's own debug information often
    declares the library's classes without defining them, and LLDB does not
    look for the definition in the library's module by itself."""
    canonical = sbtype.GetCanonicalType()
    if canonical.IsTypeComplete() or canonical.GetTypeClass() not in (lldb.eTypeClassClass, lldb.eTypeClassStruct):
        return canonical
    name = canonical.GetName()
    if name not in _complete_types:
        found = _target.FindTypes(name)
        complete = [found.GetTypeAtIndex(i) for i in range(found.GetSize())]
        complete = [t for t in complete if t.IsTypeComplete()]
        _complete_types[name] = complete[0].GetCanonicalType() if complete else canonical
    return _complete_types[name]


class _Type:
    def __init__(self, sbtype):
        self.sbtype = _complete(sbtype) if sbtype.GetTypeClass() != lldb.eTypeClassPointer else sbtype

    def strip_typedefs(self):
        return _Type(self.sbtype.GetCanonicalType())

    def unqualified(self):
        return _Type(self.sbtype.GetUnqualifiedType())

    def target(self):
        return _Type(self.sbtype.GetPointeeType())

    def pointer(self):
        return _Type(self.sbtype.GetPointerType())

    @property
    def sizeof(self):
        return self.sbtype.GetByteSize()

    def fields(self):
        t = self.sbtype
        bases = [_Field(t.GetDirectBaseClassAtIndex(i), True) for i in range(t.GetNumberOfDirectBaseClasses())]
        return bases + [_Field(t.GetFieldAtIndex(i), False) for i in range(t.GetNumberOfFields())]

    def __str__(self):
        return self.sbtype.GetName()


def _member(sbvalue, name):
    """A member, looked for in the base classes too, completed where the
    program only declares them (a model of one's own derives from the
    library's basic_model)."""
    child = sbvalue.GetChildMemberWithName(name)
    if child.IsValid() or sbvalue.GetLoadAddress() == lldb.LLDB_INVALID_ADDRESS:
        return child
    canonical = sbvalue.GetType().GetCanonicalType()
    for i in range(canonical.GetNumberOfDirectBaseClasses()):
        base = canonical.GetDirectBaseClassAtIndex(i)
        address = sbvalue.GetLoadAddress() + base.GetOffsetInBytes()
        base_value = sbvalue.CreateValueFromAddress('base', address, _complete(base.GetType()))
        found = _member(base_value.GetNonSyntheticValue(), name)
        if found.IsValid():
            return found
    return child


class _Value:
    def __init__(self, sbvalue):
        if not sbvalue.IsValid() or sbvalue.GetError().Fail():
            raise Error(str(sbvalue.GetError()))
        # The raw members of the static type, as gdb reads them: not the
        # children formatters show, nor the class LLDB guesses from a vtable.
        sbvalue = sbvalue.GetStaticValue().GetNonSyntheticValue()
        declared = sbvalue.GetType().GetCanonicalType()
        complete = _complete(declared)
        if (not declared.IsTypeComplete() and complete.IsTypeComplete()
                and sbvalue.GetLoadAddress() != lldb.LLDB_INVALID_ADDRESS):
            # Declared only, in the program's debug information (Clang emits
            # a class where its constructor is): read it as the library's.
            sbvalue = sbvalue.CreateValueFromAddress(sbvalue.GetName() or 'value', sbvalue.GetLoadAddress(),
                                                     complete).GetNonSyntheticValue()
        self.sbvalue = sbvalue

    @property
    def type(self):
        return _Type(self.sbvalue.GetType())

    @property
    def address(self):
        return self.sbvalue.GetLoadAddress()

    def __getitem__(self, key):
        if isinstance(key, int):
            return _Value(self.sbvalue.GetChildAtIndex(key))
        child = _member(self.sbvalue, key)
        if not child.IsValid():
            raise Error('no member %s in %s' % (key, self.sbvalue.GetTypeName()))
        return _Value(child)

    def __int__(self):
        error = lldb.SBError()
        signed = self.sbvalue.GetType().GetCanonicalType().GetTypeFlags() & lldb.eTypeIsSigned
        value = self.sbvalue.GetValueAsSigned(error) if signed else self.sbvalue.GetValueAsUnsigned(error)
        if error.Fail():
            raise Error(str(error))
        return value

    def __bool__(self):
        return int(self) != 0

    def __float__(self):
        text = self.sbvalue.GetValue()
        if text is None:
            raise Error('no value for %s' % self.sbvalue.GetTypeName())
        return float(text)

    def _pointer(self, address, pointer_type):
        data = lldb.SBData.CreateDataFromUInt64Array(lldb.eByteOrderLittle, 8, [address])
        return _Value(self.sbvalue.CreateValueFromData('pointer', data, pointer_type))

    def _step(self):
        return _complete(self.sbvalue.GetType().GetPointeeType()).GetByteSize()

    def __add__(self, count):
        return self._pointer(int(self) + count * self._step(), self.sbvalue.GetType())

    def __sub__(self, other):
        return (int(self) - int(other)) // self._step()

    def dereference(self):
        pointee = _complete(self.sbvalue.GetType().GetPointeeType())
        return _Value(self.sbvalue.CreateValueFromAddress('*', int(self), pointee))

    def cast(self, type_):
        return self._pointer(int(self), type_.sbtype)

    def string(self, length=None):
        if length == 0:
            return ''
        error = lldb.SBError()
        process = self.sbvalue.GetProcess()
        if length is None:
            text = process.ReadCStringFromMemory(int(self), 4096, error)
        else:
            text = process.ReadMemory(int(self), length, error)
            text = text.decode('utf-8', 'replace') if text is not None else None
        if error.Fail():
            raise Error(str(error))
        return text


_BASIC_TYPES = {'char': lldb.eBasicTypeChar, 'long': lldb.eBasicTypeLong}


def pointer_type(name):
    return _Type(_target.GetBasicType(_BASIC_TYPES[name]).GetPointerType())


_vtables = {}


def symbol_at(address):
    """The vtable an address falls in (the only symbols describe.py asks
    about). Read from the symbol tables: LLDB 16's address lookup places some
    of libgradtape's .data.rel.ro inside its .tbss and finds no symbol there."""
    key = (_target.GetProcess().GetUniqueID(), _target.GetNumModules())
    if key not in _vtables:
        found = []
        for module in _target.module_iter():
            for symbol in module:
                if symbol.GetMangledName() and symbol.GetMangledName().startswith('_ZTV'):
                    start = symbol.GetStartAddress().GetLoadAddress(_target)
                    end = symbol.GetEndAddress().GetLoadAddress(_target)
                    found.append((start, end, symbol.GetName()))
        _vtables[key] = found
    return next((name for start, end, name in _vtables[key] if start <= address < end), None)


def _read(valobj):
    global _target
    _target = valobj.GetTarget()
    return _Value(valobj)


def _type_name(sbtype):
    return sbtype.GetCanonicalType().GetUnqualifiedType().GetName()


def _is_layer_type(sbtype):
    """Whether a class is one of the layer handles or derives from one (a
    model written as a class, a Dense handle)."""
    if LAYER_TYPE.match(_type_name(sbtype)):
        return True
    canonical = sbtype.GetCanonicalType()
    return any(_is_layer_type(canonical.GetDirectBaseClassAtIndex(i).GetType())
               for i in range(canonical.GetNumberOfDirectBaseClasses()))


def is_tensor(sbtype, internal_dict):
    return bool(TENSOR_TYPE.match(_type_name(sbtype)))


def is_tape(sbtype, internal_dict):
    return _type_name(sbtype) == TAPE_TYPE


def is_array(sbtype, internal_dict):
    return array_element(_type_name(sbtype)) is not None


def is_layer(sbtype, internal_dict):
    return _is_layer_type(sbtype)


def _guarded(summary):
    """A summary that fails says why instead of making LLDB print nothing."""
    try:
        return summary()
    except Error as error:
        return '<unreadable: %s>' % error


def tensor(valobj, internal_dict):
    return _guarded(lambda: tensor_summary(_read(valobj), _type_name(valobj.GetType())))


def tape(valobj, internal_dict):
    return _guarded(lambda: tape_summary(_read(valobj), _shown_entries))


def array(valobj, internal_dict):
    return _guarded(lambda: array_summary(_read(valobj), array_element(_type_name(valobj.GetType()))))


def layer(valobj, internal_dict):
    return _guarded(lambda: layer_summary(_read(valobj)))


class NoChildren:
    """The summary says it all: no raw members under it (`frame variable -R`
    still shows them)."""

    def __init__(self, valobj, internal_dict):
        pass

    def num_children(self):
        return 0

    def get_child_index(self, name):
        return -1

    def get_child_at_index(self, index):
        return None

    def update(self):
        return True

    def has_children(self):
        return False


def set_entries(debugger, command, result, internal_dict):
    """gradtape-entries N: how many of a GradientTape's last entries print (5 at first)."""
    global _shown_entries
    try:
        _shown_entries = int(command.strip())
    except ValueError:
        result.SetError('gradtape-entries takes a count: gradtape-entries 20')
        return
    result.AppendMessage('LLDB prints the last %d entries of a GradientTape' % _shown_entries)


def __lldb_init_module(debugger, internal_dict):
    for kind in ('tensor', 'tape', 'array', 'layer'):
        debugger.HandleCommand('type summary add --category gradtape --python-function %s.%s '
                               '--recognizer-function %s.is_%s' % (__name__, kind, __name__, kind))
        debugger.HandleCommand('type synthetic add --category gradtape --python-class %s.NoChildren '
                               '--recognizer-function %s.is_%s' % (__name__, __name__, kind))
    debugger.HandleCommand('type category enable gradtape')
    debugger.HandleCommand('command script add --overwrite --function %s.set_entries gradtape-entries' % __name__)
