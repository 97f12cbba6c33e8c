"""Plotly layout the team pages' charts share, so that they read on a phone as on a desktop."""

#: The legend as a row under the plot (x axis title included): a column beside the plot took half a phone.
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.25, xanchor="left", x=0)

#: Where a title goes: below Plotly's toolbar, which a touch screen shows all the time across the top
#: of a chart (at 390 px it covered the titles). Give the layout ``top_margin(...)`` with it.
TITLE_BELOW_TOOLBAR = dict(yref="container", y=1, yanchor="top", pad=dict(t=40))


def top_margin(subtitle: bool = False) -> int:
    """The figure's top margin in pixels that holds the toolbar, the title and, if any, its subtitle."""
    return 110 if subtitle else 80
