"""A role's settings as one dict, read through its argument spec (filter `role_settings`).

A role whose Python filter takes all of its settings at once builds that dict from the option
names of its own meta/argument_specs.yml, so that no vars file lists the variables again:

    role__options: "{{ (lookup('ansible.builtin.file', role_path ~ '/meta/argument_specs.yml')
                        | ansible.builtin.from_yaml).argument_specs.main.options }}"
    role__settings: "{{ role__options | mesh_playground.playground.role_settings(
                        query('ansible.builtin.vars', *role__options), 'role_') }}"
"""

from ansible.module_utils.common.validation import (
    check_type_bool,
    check_type_float,
    check_type_int,
)

# The argument spec's own conversions: a value given with -e arrives as a string ("30"); the
# spec accepted it as an int, so the filter gets the int it stands for.
CONVERSIONS = {"int": check_type_int, "float": check_type_float, "bool": check_type_bool}


def role_settings(options, values, prefix, convert=True):
    """{option without `prefix`: value} for every option named `prefix`* of `options` (an
    argument spec's options, in their order), `values` being their values in the same order.
    With `convert`, int, float and bool options are converted as the argument spec does."""
    values = list(values)
    names = list(options)
    if len(values) != len(names):
        raise ValueError(f"role_settings: {len(names)} options but {len(values)} values")
    settings = {}
    for name, value in zip(names, values, strict=True):
        if not name.startswith(prefix):
            continue
        kind = (options[name] or {}).get("type", "str")
        if convert and kind in CONVERSIONS:
            value = CONVERSIONS[kind](value)
        settings[name.removeprefix(prefix)] = value
    return settings


class FilterModule:
    def filters(self):
        return {"role_settings": role_settings}
