# gdb's part of gradtape's printers (describe.py says what they print). Built
# into one script after describe.py, embedded in libgradtape's
# .debug_gdb_scripts section, so that gdb loads it with the library (once its
# directory is in gdb's auto-load safe-path), and installed as
# share/gradtape/gdb/gradtape_printers.py to `source` by hand.
import gdb

Error = gdb.error


def pointer_type(name):
    return gdb.lookup_type(name).pointer()


def symbol_at(address):
    text = gdb.execute('info symbol %d' % address, to_string=True)
    match = re.match(r'(.+?)( \+ \d+)? in section ', text)
    return match.group(1) if match else None


class EntriesParameter(gdb.Parameter):
    """How many of a GradientTape's last entries `print` shows."""

    set_doc = 'Set how many of a GradientTape\'s last entries gdb prints.'
    show_doc = 'Show how many of a GradientTape\'s last entries gdb prints.'

    def __init__(self):
        super().__init__('gradtape-entries', gdb.COMMAND_DATA, gdb.PARAM_ZUINTEGER)
        self.value = DEFAULT_TAPE_ENTRIES

    def get_show_string(self, value):
        return 'gdb prints the last %s entries of a GradientTape' % value


ENTRIES = EntriesParameter()


class Printer:
    def __init__(self, summary):
        self.summary = summary

    def to_string(self):
        return self.summary()


def _is_layer(type_):
    """Whether a class is one of the layer handles or derives from one (a
    model written as a class, a Dense handle)."""
    if LAYER_TYPE.match(str(type_)):
        return True
    if type_.code != gdb.TYPE_CODE_STRUCT:
        return False
    return any(field.is_base_class and _is_layer(field.type.strip_typedefs()) for field in type_.fields())


def _lookup(value):
    type_ = value.type.strip_typedefs().unqualified()
    type_name = str(type_)
    if TENSOR_TYPE.match(type_name):
        return Printer(lambda: tensor_summary(value, type_name))
    if type_name == TAPE_TYPE:
        return Printer(lambda: tape_summary(value, int(ENTRIES.value)))
    element = array_element(type_name)
    if element:
        return Printer(lambda: array_summary(value, element))
    try:
        if _is_layer(type_):
            return Printer(lambda: layer_summary(value))
    except (gdb.error, TypeError):
        pass
    return None


gdb.pretty_printers.append(_lookup)
