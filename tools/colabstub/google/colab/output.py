"""Stand-in for ``google.colab.output``: records the calls that turn Colab's custom widget manager
on and off (the real functions load or unload a widget manager script in the browser)."""

#: Every call, in order: "enable" or "disable".
calls: list = []


def enable_custom_widget_manager() -> None:
    calls.append("enable")


def disable_custom_widget_manager() -> None:
    calls.append("disable")
