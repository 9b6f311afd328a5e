from django import template

register = template.Library()


@register.filter
def thousands(value: int | None) -> str:
    """12345 → "12 345" (a thin space reads the same in ru, ro and en)."""
    if value is None:
        return "—"
    return f"{value:,}".replace(",", "\u202f")
